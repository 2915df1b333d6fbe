/**
 * Figures and files of trace / eval outputs: heatmap canvas sized from its text, traceHeatmapSvg from a
 * trace result, empty token classes left out, the AIE line figure, PNGs with text, ROME's per-case
 * .npz (read back by an independent zip/npy parser here and by numpy when python3 has it), the
 * EasyEdit layout and the report pages. Small synthetic data; no GPU.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
// png.ts loads this module by a computed specifier; importing it here puts its npm assets in the test graph
// (Deno caches them before the tests run).
import "../src/report/png_assets.ts";
import {
  averageHeatmapSvg,
  heatmapSvg,
  romeCaseOf,
  textWidth,
  traceHeatmapSvg,
} from "../src/report/heatmap.ts";
import { aieLinesSvg } from "../src/report/lines.ts";
import { svgToPng } from "../src/report/png.ts";
import { decodeRomeCase, encodeRomeCase, replotCase, romeCaseFileName } from "../src/report/rome_case.ts";
import { openNpz } from "../src/io/npz.ts";
import { ClassAccumulator } from "../src/locate/average.ts";
import { easyEditCases, easyEditSummary } from "../src/evaluate/easyedit_format.ts";
import { reportPathFor } from "../src/cli/eval.ts";
import { decodePng, inkPixels } from "./_png.ts";
import { fakeEval, fakeTrace, tok, writeSampleReports } from "./_report_samples.ts";

/** Every <text> of an SVG, with an estimate of its extent, lies inside the canvas. */
function assertTextInside(svg: string) {
  const width = Number(/<svg[^>]* width="([\d.]+)"/.exec(svg)![1]);
  for (const m of svg.matchAll(/<text ([^>]*)>([^<]*)</g)) {
    const attr = (k: string) => new RegExp(`${k}="([^"]+)"`).exec(m[1])?.[1];
    if (attr("transform")) continue; // rotated axis labels
    const x = Number(attr("x")), anchor = attr("text-anchor") ?? "start";
    const size = Number(attr("font-size") ?? 11);
    const w = textWidth(m[2].replace(/&\w+;/g, "x"), size);
    const [a, b] = anchor === "middle" ? [x - w / 2, x + w / 2] : anchor === "end" ? [x - w, x] : [x, x + w];
    assert.ok(a >= 0 && b <= width, `text '${m[2]}' spans [${a}, ${b}] outside 0..${width}`);
  }
}

Deno.test("heatmap: a long title on a 2-layer grid is not clipped; trace result and ROME case give one figure", () => {
  const svg = heatmapSvg({
    values: [[0.1, 0.2], [0.3, 0.4]],
    rowLabels: ["a", "b"],
    colormap: "Purples",
    title: "Impact of restoring MLP after corrupted input, a rather long title",
    xlabel: "center of interval of 10 restored MLP layers",
    colorbarLabel: "p(x)",
  });
  assertTextInside(svg);
  const r = fakeTrace();
  const a = traceHeatmapSvg(r, "mlp", tok);
  const t = r.traces[1];
  const legacy = traceHeatmapSvg({
    kind: "mlp",
    tokens: r.ids.slice(0, 5).map(tok.tokenString),
    subjectRange: r.subjectRange,
    scores: t.scores,
    pCorrupt: r.pCorrupt,
    window: 3,
    answer: tok.decode(r.answer),
  });
  assert.equal(a, legacy);
  assertTextInside(a);
  assert.match(a, /Impact of restoring MLP after corrupted input/);
  assert.match(a, /w17\*/);
  // ROME's vmin = low_score: a cell at p_corrupt takes the lowest Greens colour, the maximum the highest.
  const c = romeCaseOf(r, "mlp", tok);
  c.scores[0][0] = r.pCorrupt;
  const mx = Math.max(...c.scores.flat());
  const svg2 = traceHeatmapSvg(c);
  const fills = [...svg2.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="\d+" height="18" fill="(#\w+)">/g)].map(
    (m) => m[1],
  );
  assert.equal(fills.length, 15);
  assert.equal(fills[0], "#f7fcf5");
  assert.equal(fills[c.scores.flat().indexOf(mx)], "#00441b");
  assert.throws(
    () => romeCaseOf(r, "attn" as never, tok) && romeCaseOf({ ...r, traces: [] }, "mlp", tok),
    RangeError,
  );
});

Deno.test("average heatmap and AIE lines leave out token classes without samples", () => {
  const acc = new ClassAccumulator(3);
  const r = fakeTrace(5);
  // Two-token subject: "middle subject tokens" has no sample.
  acc.add(r.traces[0].scores, r.pCorrupt, [1, 3]);
  acc.add(fakeTrace(7).traces[0].scores, 0.04, [1, 3]);
  const a = acc.result();
  assert.equal(a.count[1], 0);
  const svg = averageHeatmapSvg("hidden", a, { window: 10, traced: 2 });
  assert.doesNotMatch(svg, /middle subject tokens/);
  assert.match(svg, /first subject token \(n=2\)/);
  assertTextInside(svg);
  const lines = aieLinesSvg({ hidden: a, mlp: a }, { window: 3, model: "tiny" });
  const nonEmpty = a.count.filter((n) => n > 0).length;
  assert.equal((lines.match(/<polyline /g) ?? []).length, 2 * nonEmpty);
  assert.equal((lines.match(/<polygon /g) ?? []).length, 2 * nonEmpty);
  assert.doesNotMatch(lines, /Middle subject tokens/);
  assert.match(lines, /run of 3 MLP lookups/);
  // A line's points follow its means: the highest mean of a class is its smallest y.
  const j = 5, m = a.mean[j];
  const line = [...lines.matchAll(/<polyline points="([^"]+)"/g)][nonEmpty - 1][1];
  const ys = line.split(" ").map((p) => Number(p.split(",")[1]));
  assert.equal(ys.indexOf(Math.min(...ys)), m.indexOf(Math.max(...m)));
});

Deno.test("PNG: twice the SVG's size, text drawn with the bundled font", async () => {
  const text =
    `<svg xmlns="http://www.w3.org/2000/svg" width="120" height="30"><rect width="100%" height="100%" fill="white"/>` +
    `<text x="4" y="20" font-family="DejaVu Sans" font-size="14">p(Paris)</text></svg>`;
  const img = decodePng(await svgToPng(text));
  assert.equal(img.width, 240);
  assert.equal(img.height, 60);
  assert.ok(inkPixels(img) > 100, `text drew ${inkPixels(img)} pixels`);
  const blank = decodePng(await svgToPng(text.replace("p(Paris)", "")));
  assert.equal(inkPixels(blank), 0);
});

/** An independent reader of numpy.savez archives: stored zip entries, .npy v1 headers. */
function readSavez(bytes: Uint8Array): Map<string, { descr: string; shape: number[]; body: Uint8Array }> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Map<string, { descr: string; shape: number[]; body: Uint8Array }>();
  let p = 0;
  while (dv.getUint32(p, true) === 0x04034b50) {
    assert.equal(dv.getUint16(p + 8, true), 0, "stored, as numpy.savez");
    const size = dv.getUint32(p + 18, true), nameLen = dv.getUint16(p + 26, true);
    const extra = dv.getUint16(p + 28, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 30, p + 30 + nameLen));
    const data = bytes.subarray(p + 30 + nameLen + extra, p + 30 + nameLen + extra + size);
    assert.deepEqual([...data.subarray(0, 8)], [0x93, 78, 85, 77, 80, 89, 1, 0]);
    const hl = data[8] | (data[9] << 8);
    assert.equal((10 + hl) % 64, 0, "header padded to 64 bytes");
    const h = new TextDecoder().decode(data.subarray(10, 10 + hl));
    const descr = /'descr': '([^']+)'/.exec(h)![1];
    const shape = /'shape': \(([^)]*)\)/.exec(h)![1].split(",").filter((x) => x.trim()).map(Number);
    out.set(name.replace(/\.npy$/, ""), { descr, shape, body: data.subarray(10 + hl) });
    p += 30 + nameLen + extra + size;
  }
  return out;
}

Deno.test("ROME case .npz: keys, dtypes and values as ROME's numpy.savez; read back and re-plotted", async () => {
  const r = fakeTrace(11);
  const c = romeCaseOf(r, "attn", tok);
  const bytes = encodeRomeCase(c);
  const e = readSavez(bytes);
  assert.deepEqual(
    [...e.keys()].sort(),
    [
      "answer",
      "high_score",
      "input_ids",
      "input_tokens",
      "kind",
      "low_score",
      "scores",
      "subject_range",
      "window",
    ],
  );
  const s = e.get("scores")!;
  assert.equal(s.descr, "<f4");
  assert.deepEqual(s.shape, [5, 3]);
  const f32 = new Float32Array(s.body.slice().buffer);
  c.scores.flat().forEach((v, i) => assert.ok(Math.abs(f32[i] - v) <= 1e-7 * Math.abs(v) + 1e-9));
  const low = e.get("low_score")!;
  assert.equal(low.descr, "<f8");
  assert.deepEqual(low.shape, []);
  assert.equal(new DataView(low.body.slice().buffer).getFloat64(0, true), r.pCorrupt);
  assert.equal(e.get("input_ids")!.descr, "<i8");
  assert.equal(e.get("subject_range")!.descr, "<i8");
  assert.equal(e.get("input_tokens")!.descr, "<U5"); // "<bos>" is the longest token
  assert.equal(e.get("kind")!.descr, "<U4");
  const kindCps = new Uint32Array(e.get("kind")!.body.slice().buffer);
  assert.equal(String.fromCodePoint(...kindCps), "attn");
  // engram's reader and the re-plot.
  const back = decodeRomeCase(openNpz(bytes, "x.npz"));
  assert.deepEqual(back.input_tokens, c.input_tokens);
  assert.deepEqual(back.subject_range, [1, 3]);
  assert.equal(back.kind, "attn");
  assert.equal(back.answer, " w41");
  const hidden = decodeRomeCase(openNpz(encodeRomeCase(romeCaseOf(r, "hidden", tok)), "h.npz"));
  assert.equal(hidden.kind, "");
  const dir = await Deno.makeTempDir({ prefix: "engram_case_" });
  try {
    const file = join(dir, romeCaseFileName("a/b", "attn"));
    assert.equal(file.slice(dir.length + 1), "knowledge_a_b_attn.npz");
    await Deno.writeFile(file, bytes);
    const svg = await replotCase(file);
    assert.match(svg, /Impact of restoring Attn after corrupted input/);
    assert.match(svg, /p\(w41\)/);
    const py = await new Deno.Command("python3", {
      args: [
        "-c",
        "import sys, json, numpy as n; d = n.load(sys.argv[1]); " +
        "print(json.dumps({k: [d[k].dtype.str, list(d[k].shape), d[k].tolist()] for k in d.files}))",
        file,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output().catch(() => undefined);
    if (!py || !py.success) {
      console.log(`python3 with numpy unavailable: numpy.load check skipped`);
      return;
    }
    const d = JSON.parse(new TextDecoder().decode(py.stdout));
    assert.deepEqual(d.scores.slice(0, 2), ["<f4", [5, 3]]);
    d.scores[2].flat().forEach((v: number, i: number) => assert.equal(v, f32[i]));
    assert.deepEqual(d.low_score, ["<f8", [], r.pCorrupt]);
    assert.deepEqual(d.input_ids, ["<i8", [5], [0, 17, 23, 5, 9]]);
    assert.deepEqual(d.input_tokens, ["<U5", [5], ["<bos>", "w17", "w23", "w5", "w9"]]);
    assert.deepEqual(d.subject_range, ["<i8", [2], [1, 3]]);
    assert.deepEqual(d.answer, ["<U4", [], " w41"]);
    assert.deepEqual(d.window, ["<i8", [], 3]);
    assert.deepEqual(d.kind, ["<U4", [], "attn"]);
    assert.ok(Math.abs(d.high_score[2] - 0.9) < 1e-7 && d.high_score[0] === "<f4");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("EasyEdit layout: pre / case_id / requested_rewrite / post and summary_metrics' means", () => {
  const r = fakeEval();
  const reqs = [
    {
      prompt: "{} was born in",
      subject: "S0",
      target_new: "T0",
      ground_truth: "G0",
      rephrase: ["Where was S0 born?"],
      locality: [{ prompt: "L", ground_truth: "l", key: "Relation_Specificity" }],
      portability: [{ prompt: "P", ground_truth: "p", key: "Subject_Aliasing" }],
    },
    { prompt: "{} lives in", subject: "S1", target_new: "T1" },
  ];
  const cases = easyEditCases(r, reqs);
  assert.deepEqual(Object.keys(cases[0]), ["pre", "case_id", "requested_rewrite", "post"]);
  assert.deepEqual(cases[0].post, {
    rewrite_acc: [1],
    rephrase_acc: [0.5],
    locality: { Relation_Specificity_acc: [0.9] },
    portability: { Subject_Aliasing_acc: [0.25] },
    fluency: { ngram_entropy: 5.5 },
  });
  assert.deepEqual(cases[0].pre, {
    rewrite_acc: [0.1],
    rephrase_acc: [0.05],
    locality: {},
    portability: { Subject_Aliasing_acc: [0.5] },
  });
  assert.deepEqual(cases[1].post.locality, { neighborhood_acc: [0.9] });
  assert.equal(cases[0].requested_rewrite.prompt, "S0 was born in");
  assert.equal(cases[0].requested_rewrite.rephrase_prompt, "Where was S0 born?");
  assert.deepEqual(cases[0].requested_rewrite.locality, {
    Relation_Specificity: { prompt: ["L"], ground_truth: ["l"] },
  });
  const sum = easyEditSummary(cases);
  assert.equal(sum.post.rewrite_acc, 0.75);
  assert.equal(sum.post.rephrase_acc, 0.375);
  assert.deepEqual(sum.post.portability, { Subject_Aliasing_acc: 0.25 });
  assert.deepEqual(sum.post.locality, { Relation_Specificity_acc: 0.9, neighborhood_acc: 0.9 });
  assert.throws(() => easyEditCases({ ...r, per_case: undefined }), RangeError);
  assert.equal(reportPathFor("out/edits.json"), "out/edits.html");
  assert.equal(reportPathFor("out/edits.html"), "out/edits.report.html");
  assert.equal(reportPathFor("out/edits"), "out/edits.report.html");
});

Deno.test("trace folders and report pages: files, inline SVGs, no external resources", async () => {
  const dir = await Deno.makeTempDir({ prefix: "engram_reports_" });
  try {
    const p = await writeSampleReports(dir, true);
    const names = [...Deno.readDirSync(join(dir, "facts"))].map((e) => e.name).sort();
    for (
      const n of [
        "aie_lines.png",
        "aie_lines.svg",
        "average.json",
        "average_attn.svg",
        "average_hidden.png",
        "knowledge_f0.npz",
        "knowledge_f0_mlp.npz",
        "knowledge_f2_attn.npz",
        "report.html",
      ]
    ) {
      assert.ok(names.includes(n), `${n} in ${names}`);
    }
    const avg = JSON.parse(await Deno.readTextFile(join(dir, "facts", "average.json")));
    assert.deepEqual(avg.facts[0].cases, [
      "knowledge_f0.npz",
      "knowledge_f0_mlp.npz",
      "knowledge_f0_attn.npz",
    ]);
    assert.equal(avg.facts[3].cases, undefined);
    const img = decodePng(await Deno.readFile(join(dir, "trace", "trace_hidden.png")));
    assert.ok(inkPixels(img) > 500);
    for (const [kind, n] of [["trace", 3], ["facts", 4], ["eval", 1]] as const) {
      const html = await Deno.readTextFile(p[kind]);
      assert.equal((html.match(/<svg /g) ?? []).length, n, kind);
      assert.doesNotMatch(html, /<script|<link |src="http|href="http/, kind);
      assert.doesNotMatch(html, /<b>/, "text is escaped");
    }
    assert.match(await Deno.readTextFile(p.facts), /middle subject tokens/); // f2 has a 3-token subject
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
