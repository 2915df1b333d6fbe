/**
 * Splits the last record of sequential runs by request kind (`"kind"` of the requests file: "rewrite" /
 * "insertion", src/io/world_rewrites.ts): loads each DIR/<method>/checkpoint.json's edited weights into
 * the unedited model and measures the edited requests again, per kind, as the run's records do
 * (locality against the unedited model's pre-edit answers).
 *
 * usage: deno run -P scripts/sequential_by_kind.ts --model DIR --data FILE --out JSON DIR [DIR...]
 */
import { parseArgs } from "node:util";
import { aggregate, evaluateRequests, preEditState } from "../src/evaluate/edit_metrics.ts";
import { loadModel } from "../src/model/load.ts";
import { readRequests } from "../src/prompt/requests.ts";
import { writeFileAtomic } from "../src/io/atomic.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { model: { type: "string" }, data: { type: "string" }, out: { type: "string" } },
  allowPositionals: true,
  strict: true,
});
if (!values.model || !values.data || !values.out || positionals.length === 0) {
  console.error(
    "usage: deno run -P scripts/sequential_by_kind.ts --model DIR --data FILE --out JSON DIR [DIR...]",
  );
  Deno.exit(2);
}
const requests = await readRequests(values.data);
const kinds = (JSON.parse(await Deno.readTextFile(values.data)) as { kind?: string }[]).map((r) =>
  r.kind ?? "rewrite"
);
const lm = await loadModel(values.model);
const model = lm.model, tok = lm.tokenizer!;
const originals = new Map([...model.weights].map(([k, t]) => [k, Float32Array.from(t.data)]));
const report: Record<string, unknown>[] = [];
for (const dir of positionals) {
  for await (const e of Deno.readDir(dir)) {
    if (!e.isDirectory) continue;
    const folder = `${dir}/${e.name}`;
    let ckpt;
    try {
      ckpt = JSON.parse(await Deno.readTextFile(`${folder}/checkpoint.json`));
    } catch {
      continue;
    }
    const n: number = ckpt.edits;
    const reqs = requests.slice(0, n);
    for (const [name, data] of originals) model.setWeight(name, Float32Array.from(data));
    const pre = await preEditState(model, tok, reqs);
    const bytes = await Deno.readFile(`${folder}/${ckpt.file}`);
    for (const w of ckpt.weights) {
      model.setWeight(w.name, new Float32Array(bytes.slice(w.offset, w.offset + w.length * 4).buffer));
    }
    const sc = await evaluateRequests(model, tok, reqs, { pre, fluencyMaxLen: 0 });
    const row: Record<string, unknown> = { label: e.name, edits: n };
    for (const kind of ["rewrite", "insertion"]) {
      const idx = reqs.map((_, i) => i).filter((i) => kinds[i] === kind);
      const m = aggregate(idx.map((i) => sc[i]));
      row[kind] = {
        count: idx.length,
        reliability: m.reliability,
        generalization: m.generalization,
        locality: m.locality,
        portability: m.portability,
      };
    }
    row.all = aggregate(sc);
    report.push(row);
    console.log(JSON.stringify(row));
  }
}
await writeFileAtomic(values.out, JSON.stringify(report, null, 2) + "\n");
model.destroy();
