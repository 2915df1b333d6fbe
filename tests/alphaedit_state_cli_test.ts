/**
 * AlphaEdit's state across `engram edit` runs (src/edit/alphaedit_state.ts) on the world model: a second
 * `edit --method alphaedit` of the first edit's output continues its K_p K_pᵀ. Checked against float64
 * computed here: the saved K_p K_pᵀ equals Σ k kᵀ over both edits' keys (keys from the float64 forward), the
 * second edit's adjoint X equals the dense solve (P(K_pK_pᵀ + KKᵀ) + αI)⁻¹PK with the first edit's keys in
 * K_pK_pᵀ (and not the fresh-state solve), so its move of the first edit's keys is smaller than a fresh
 * state's; an unedited model starts from zero; another layer set, a tampered state file and
 * a state for another width are typed errors naming the file and field.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { InputError } from "../src/errors.ts";
import { readSafetensors } from "../src/io/safetensors.ts";
import { loadHFModel } from "../src/io/hf_model.ts";
import { readRequests } from "../src/prompt/requests.ts";
import { sitesAtRef } from "../src/reference/edit_value.ts";
import { engram } from "./_util.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MODEL = ROOT + "fixtures/world/model";
const LAYER = 0, ALPHA = 1;

/** Float64 safetensors tensor by name. */
function f64(file: Awaited<ReturnType<typeof readSafetensors>>, name: string): Float64Array {
  const t = file.tensors.get(name)!;
  assert.equal(t.dtype, "F64", name);
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  return Float64Array.from({ length: t.numel }, (_, i) => dv.getFloat64(i * 8, true));
}

/** Dense Gaussian elimination with partial pivoting: A [n, n] X = B [n, m], float64. */
function solveDense(A: Float64Array, B: Float64Array, n: number, m: number): Float64Array {
  const a = Float64Array.from(A), b = Float64Array.from(B);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]) > Math.abs(a[p * n + c])) p = r;
    for (let k = 0; k < n; k++) [a[c * n + k], a[p * n + k]] = [a[p * n + k], a[c * n + k]];
    for (let k = 0; k < m; k++) [b[c * m + k], b[p * m + k]] = [b[p * m + k], b[c * m + k]];
    for (let r = c + 1; r < n; r++) {
      const f = a[r * n + c] / a[c * n + c];
      if (f === 0) continue;
      for (let k = c; k < n; k++) a[r * n + k] -= f * a[c * n + k];
      for (let k = 0; k < m; k++) b[r * m + k] -= f * b[c * m + k];
    }
  }
  for (let c = n - 1; c >= 0; c--) {
    for (let k = 0; k < m; k++) {
      let s = b[c * m + k];
      for (let j = c + 1; j < n; j++) s -= a[c * n + j] * b[j * m + k];
      b[c * m + k] = s / a[c * n + c];
    }
  }
  return b;
}

/** AlphaEdit's X for keys K given P (dense) and K_pK_pᵀ, the reference's literal system. */
function alphaX(P: Float64Array, kpkp: Float64Array, K: Float64Array[], I: number): Float64Array {
  const n = K.length;
  const M = Float64Array.from(kpkp);
  for (const k of K) for (let a = 0; a < I; a++) for (let b = 0; b < I; b++) M[a * I + b] += k[a] * k[b];
  const A = new Float64Array(I * I), B = new Float64Array(I * n);
  for (let a = 0; a < I; a++) {
    for (let b = 0; b < I; b++) {
      let s = 0;
      for (let c = 0; c < I; c++) s += P[a * I + c] * M[c * I + b];
      A[a * I + b] = s + (a === b ? ALPHA : 0);
    }
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < I; c++) s += P[a * I + c] * K[j][c];
      B[a * n + j] = s;
    }
  }
  return solveDense(A, B, I, n);
}

const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    s += b[i] ** 2;
  }
  return Math.sqrt(d / s);
};

Deno.test({
  name: "edit --method alphaedit twice: the second edit continues the first's K_p K_pᵀ (float64 checks)",
  ignore: !existsSync(MODEL + "/model.safetensors"),
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "engram_alpha_state_" });
    try {
      const reqs = await readRequests(ROOT + "fixtures/world/counterfact.json");
      const A = reqs.slice(0, 2), B = reqs.slice(2, 5);
      const asJson = (rs: typeof reqs) =>
        JSON.stringify(rs.map((r) => ({ prompt: r.prompt, subject: r.subject, target_new: r.target_new })));
      await Deno.writeTextFile(`${tmp}/a.json`, asJson(A));
      await Deno.writeTextFile(`${tmp}/b.json`, asJson(B));
      const lines = (await Deno.readTextFile(ROOT + "fixtures/world/train.jsonl")).split("\n").slice(0, 300);
      await Deno.writeTextFile(`${tmp}/corpus.jsonl`, lines.join("\n"));
      const hp = {
        fact_token: "last",
        layers: [LAYER],
        L2: ALPHA,
        v_num_grad_steps: 4,
        context_template_length_params: [],
      };
      await Deno.writeTextFile(`${tmp}/hp.json`, JSON.stringify(hp));
      const common = [
        "--method",
        "alphaedit",
        "--hparams",
        `${tmp}/hp.json`,
        "--stats-corpus",
        `${tmp}/corpus.jsonl`,
      ];
      const run = (...a: string[]) => engram("edit", ...common, "--stats-dir", `${tmp}/stats`, ...a);
      const r1 = await run("--model", MODEL, "--requests", `${tmp}/a.json`, "--out", `${tmp}/e1`, "--json");
      assert.equal(r1.code, 0, r1.stderr);
      assert.match(r1.stderr, /not an edited model: AlphaEdit starts from K_p K_pᵀ = 0/);
      const r2 = await run(
        "--model",
        `${tmp}/e1`,
        "--requests",
        `${tmp}/b.json`,
        "--out",
        `${tmp}/e2`,
        "--json",
      );
      assert.equal(r2.code, 0, r2.stderr);
      assert.match(r2.stderr, /continuing the AlphaEdit state of .*e1\.editlog \(2 earlier edit/);
      const info2 = JSON.parse(r2.stdout).info;
      assert.equal(info2.prior_edits, 2);
      assert.equal(info2.alphaedit_state.edits, 5);
      assert.equal(info2.alphaedit_state.dtype, "F64");
      assert.match(info2.alphaedit_state.resumed_from, /e1\.editlog$/);
      const log1 = JSON.parse(await Deno.readTextFile(`${tmp}/e1.editlog/log.json`));
      assert.equal(log1.info.alphaedit_state.edits, 2);
      assert.equal(log1.info.alphaedit_state.resumed_from, undefined);

      // Float64 keys at the edited layer's c_proj input (the prompt's last token, BOS first), on the
      // unedited model: layer 0's keys lie upstream of the edited c_proj, so every edit sees these.
      const hf = await loadHFModel(MODEL);
      const cfg = hf.config, I = cfg.nInner, tok = hf.tokenizer!;
      const key = (r: (typeof reqs)[number]) => {
        const ids = [tok.eosId!, ...tok.encode(r.prompt.replace("{}", r.subject))];
        return sitesAtRef(cfg, hf.weights, ids, ids.length - 1, [`mlp_post.${LAYER}`])[0];
      };
      const KA = A.map(key), KB = B.map(key);
      const outer = (K: Float64Array[]) => {
        const m = new Float64Array(I * I);
        for (const k of K) {
          for (let a = 0; a < I; a++) for (let b = 0; b < I; b++) m[a * I + b] += k[a] * k[b];
        }
        return m;
      };
      const s1 = await readSafetensors(`${tmp}/e1.editlog/alphaedit_state.safetensors`);
      const s2 = await readSafetensors(`${tmp}/e2.editlog/alphaedit_state.safetensors`);
      const e1kk = relErr(f64(s1, `layer.${LAYER}.kpkp`), outer(KA));
      const e2kk = relErr(f64(s2, `layer.${LAYER}.kpkp`), outer([...KA, ...KB]));
      console.log(
        `K_pK_pᵀ vs float64 Σkkᵀ: after edit 1 ${e1kk.toExponential(2)}, after edit 2 ${
          e2kk.toExponential(2)
        }`,
      );
      assert.ok(e1kk < 1e-5 && e2kk < 1e-5, `${e1kk} ${e2kk}`);
      // The basis is carried over unchanged (P of the unedited model's statistics).
      assert.deepEqual(f64(s2, `layer.${LAYER}.basis`), f64(s1, `layer.${LAYER}.basis`));

      // The second edit's X is the solve with the first edit's keys in K_pK_pᵀ, not the fresh one.
      const U = f64(s1, `layer.${LAYER}.basis`), r = U.length / I;
      const P = new Float64Array(I * I);
      for (let j = 0; j < r; j++) {
        for (let a = 0; a < I; a++) {
          const u = U[j * I + a];
          for (let b = 0; b < I; b++) P[a * I + b] += u * U[j * I + b];
        }
      }
      const fac2 = await readSafetensors(`${tmp}/e2.editlog/factors.safetensors`);
      const X2 = fac2.tensors.get(`layer.${LAYER}.x`)!.data,
        resid2 = fac2.tensors.get(`layer.${LAYER}.resid`)!.data;
      const Xres = alphaX(P, outer(KA), KB, I), Xfresh = alphaX(P, new Float64Array(I * I), KB, I);
      const eRes = relErr(X2, Xres), eFresh = relErr(X2, Xfresh);
      console.log(
        `edit 2's X vs float64: resumed ${eRes.toExponential(2)}, fresh-state solve ${
          eFresh.toExponential(2)
        }`,
      );
      assert.ok(eRes < 1e-3, `X vs resumed solve ${eRes}`);
      assert.ok(eFresh > 10 * eRes, `X is not the fresh-state solve: ${eFresh} vs ${eRes}`);
      // The move of the first edit's keys: ‖kᵀ X resid‖ / (‖k‖ ‖X resid‖_F), resumed vs a fresh state.
      const C = cfg.nEmbd, nB = KB.length;
      const move = (X: ArrayLike<number>) => {
        let num = 0, den = 0, kk = 0;
        const dW = new Float64Array(I * C);
        for (let a = 0; a < I; a++) {
          for (let j = 0; j < nB; j++) {
            for (let c = 0; c < C; c++) dW[a * C + c] += X[a * nB + j] * resid2[j * C + c];
          }
        }
        for (const v of dW) den += v * v;
        for (const k of KA) {
          for (let c = 0; c < C; c++) {
            let s = 0;
            for (let a = 0; a < I; a++) s += k[a] * dW[a * C + c];
            num += s * s;
          }
          for (const x of k) kk += x * x;
        }
        return Math.sqrt(num / (den * kk));
      };
      const mRes = move(X2), mFresh = move(Xfresh);
      console.log(
        `edit 2's relative move of edit 1's keys: resumed ${mRes.toExponential(3)}, fresh ${
          mFresh.toExponential(3)
        }`,
      );
      assert.ok(mRes < mFresh, `${mRes} vs ${mFresh}`);
      // The null-space property: ΔW = P ΔW (keys in C's preserved span are not moved), to float tolerance.
      const Xp = new Float64Array(I * nB);
      for (let a = 0; a < I; a++) {
        for (let b = 0; b < I; b++) {
          for (let j = 0; j < nB; j++) Xp[a * nB + j] += P[a * I + b] * X2[b * nB + j];
        }
      }
      const eNull = relErr(Xp, X2);
      console.log(`‖PX − X‖/‖X‖ = ${eNull.toExponential(2)}`);
      assert.ok(eNull < 1e-5, `${eNull}`);

      // Other layers than the saved state's: an error naming log.json and the field.
      await Deno.writeTextFile(`${tmp}/hp1.json`, JSON.stringify({ ...hp, layers: [1] }));
      const bad = await engram(
        "edit",
        "--method",
        "alphaedit",
        "--hparams",
        `${tmp}/hp1.json`,
        "--model",
        `${tmp}/e2`,
        "--requests",
        `${tmp}/b.json`,
        "--out",
        `${tmp}/e3`,
      );
      assert.equal(bad.code, 1, bad.stderr);
      assert.match(
        bad.stderr,
        /e2\.editlog\/log\.json.*info\.alphaedit_state\.layers|info\.alphaedit_state\.layers.*e2\.editlog\/log\.json/,
      );
      assert.ok(!existsSync(`${tmp}/e3`));
      // A state file changed since the edit: its checksum is refused, naming the file.
      const sf = `${tmp}/e2.editlog/alphaedit_state.safetensors`;
      const bytes = await Deno.readFile(sf);
      bytes[bytes.length - 3] ^= 1;
      await Deno.writeFile(sf, bytes);
      const tam = await run("--model", `${tmp}/e2`, "--requests", `${tmp}/b.json`, "--out", `${tmp}/e3`);
      assert.equal(tam.code, 1, tam.stderr);
      assert.match(
        tam.stderr,
        /alphaedit_state\.safetensors.*checksum|checksum.*alphaedit_state\.safetensors/,
      );
      assert.ok(!existsSync(`${tmp}/e3`));
      // A log claiming another width (d_k): refused before the checksum is looked at.
      const lj = `${tmp}/e1.editlog/log.json`;
      const lj1 = JSON.parse(await Deno.readTextFile(lj));
      lj1.info.alphaedit_state.n_inner = I + 1;
      const { readAlphaEditState } = await import("../src/edit/alphaedit_state.ts");
      await assert.rejects(
        () =>
          readAlphaEditState(`${tmp}/e1.editlog`, lj1.info, {
            nInner: I,
            layers: [LAYER],
            nullspaceThreshold: 2e-2,
          }),
        (e: Error & { field?: string; file?: string }) =>
          e instanceof InputError && e.field === "info.alphaedit_state.n_inner" &&
          /log\.json$/.test(e.file ?? ""),
      );
      // --reset-state starts from zero on an AlphaEdit-edited model.
      const fresh = await run(
        "--model",
        `${tmp}/e1`,
        "--requests",
        `${tmp}/b.json`,
        "--out",
        `${tmp}/e4`,
        "--json",
        "--reset-state",
      );
      assert.equal(fresh.code, 0, fresh.stderr);
      const info4 = JSON.parse(fresh.stdout).info;
      assert.equal(info4.prior_edits, 0);
      assert.equal(info4.alphaedit_state.edits, 3);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
