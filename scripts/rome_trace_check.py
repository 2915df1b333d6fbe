"""Recomputes engram's causal traces the way ROME's experiments/causal_trace.py does, in float64 numpy.

Independent of engram's code: its own GPT-2 forward (safetensors read by hand), the noise drawn by
numpy.random.RandomState(1).randn(samples, e - b, C) afresh for every run and added to the token
embeddings (wte output) of rows 1..samples, restorations h[1:, t] = h[0, t] at the block output (hidden),
the MLP output or the attention output of every layer in ROME's window, and the score
softmax(logits[1:, -1]).mean(0)[argmax of the clean row]. Reads the JSON of scripts/trace_rome_dump.ts.
With AVERAGE.json (`engram trace --facts ... --json` on the same facts and settings) it also redoes
notebooks/average_causal_effects.ipynb's token-class averages from the recomputed grids (tokens pooled,
mean score minus mean low score, 1.96 * numpy std (ddof 0) / sqrt(prompts)) and compares.

python3 scripts/rome_trace_check.py MODEL_DIR DUMP.json [AVERAGE.json]
"""
import json
import struct
import sys

import numpy as np


def load_weights(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        assert v["dtype"] == "F32", (name, v["dtype"])
        lo, hi = v["data_offsets"]
        out[name.removeprefix("transformer.")] = (
            np.frombuffer(data[lo:hi], dtype="<f4").reshape(v["shape"]).astype(np.float64)
        )
    return out


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def gelu_new(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def forward(w, cfg, ids, rows, noise, tokens_to_mix, patch):
    """Batch of `rows` copies of `ids`; row 0 clean. patch: {(kind, layer): [token, ...]}."""
    L, C, H = cfg["n_layer"], cfg["n_embd"], cfg["n_head"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    T = len(ids)
    x = np.repeat(w["wte.weight"][ids][None], rows, axis=0)
    b, e = tokens_to_mix
    rs = np.random.RandomState(1)  # ROME re-creates it on every trace_with_patch call
    x[1:, b:e] += noise * rs.randn(rows - 1, e - b, C)
    h = x + w["wpe.weight"][:T][None]
    mask = np.tril(np.ones((T, T), dtype=bool))
    D = C // H

    def restore(v, kind, layer):
        for t in patch.get((kind, layer), []):
            v[1:, t] = v[0, t]

    for l in range(L):
        p = f"h.{l}."
        a_in = layer_norm(h, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = a_in @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = np.split(qkv, 3, axis=-1)
        q = q.reshape(rows, T, H, D).transpose(0, 2, 1, 3)
        k = k.reshape(rows, T, H, D).transpose(0, 2, 1, 3)
        v = v.reshape(rows, T, H, D).transpose(0, 2, 1, 3)
        att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D)
        att = np.where(mask, att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(0, 2, 1, 3).reshape(rows, T, C)
        a = y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        restore(a, "attn", l)
        h = h + a
        m_in = layer_norm(h, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        m = gelu_new(m_in @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        m = m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
        restore(m, "mlp", l)
        h = h + m
        restore(h, "hidden", l)
    h = layer_norm(h, w["ln_f.weight"], w["ln_f.bias"], eps)
    logits = h[:, -1] @ w["wte.weight"].T
    logits -= logits.max(-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(-1, keepdims=True)


def main():
    model_dir, dump_path = sys.argv[1], sys.argv[2]
    cfg = json.load(open(f"{model_dir}/config.json"))
    w = load_weights(f"{model_dir}/model.safetensors")
    dump = json.load(open(dump_path))
    noise, samples, window = dump["noise_std"], dump["samples"], dump["window"]
    L = cfg["n_layer"]
    grids = {}
    worst = {"p_clean": 0.0, "p_corrupt": 0.0, "hidden": 0.0, "mlp": 0.0, "attn": 0.0}
    for case in dump["cases"]:
        ids, rng = case["ids"], tuple(case["subject_range"])
        rows = samples + 1
        clean = forward(w, cfg, ids, rows, noise, rng, {})
        answer = int(np.argmax(clean[0]))
        assert answer == case["answer"], (case["id"], answer, case["answer"])
        worst["p_clean"] = max(worst["p_clean"], abs(clean[0, answer] - case["p_clean"]))
        low = clean[1:].mean(0)[answer]
        worst["p_corrupt"] = max(worst["p_corrupt"], abs(low - case["p_corrupt"]))
        ours = {}
        for kind in ["hidden", "mlp", "attn"]:
            got = np.array(case["scores"][kind])
            ours[kind] = np.zeros_like(got)
            for t in range(len(ids)):
                for l in range(L):
                    if kind == "hidden":
                        layers = [l]
                    else:
                        layers = range(max(0, l - window // 2), min(L, l - (-window // 2)))
                    patch = {(kind, x): [t] for x in layers}
                    p = forward(w, cfg, ids, rows, noise, rng, patch)[1:].mean(0)[answer]
                    worst[kind] = max(worst[kind], abs(p - got[t, l]))
                    ours[kind][t, l] = p
            grids.setdefault(kind, []).append((ours[kind], low, rng))
    print(f"{len(dump['cases'])} cases, noise std {noise}, max |engram - ROME-style float64|:")
    for k, v in worst.items():
        print(f"  {k:10s} {v:.3e}")
    if len(sys.argv) > 3:
        engram = json.load(open(sys.argv[3]))["kinds"]
        for kind, cases in grids.items():
            classes = [[] for _ in range(6)]
            lows = []
            for scores, low, (first_e, first_a) in cases:
                last_e, last_a = first_a - 1, len(scores) - 1
                lows.append(low)
                classes[0].append(scores[first_e][None])
                classes[1].append(scores[first_e + 1 : last_e])
                classes[2].append(scores[last_e][None])
                classes[3].append(scores[first_a][None])
                classes[4].append(scores[first_a + 1 : last_a])
                classes[5].append(scores[last_a][None])
            size = len(cases)
            low = np.mean(lows)
            e = engram[kind]
            dm = dc = 0.0
            for i, parts in enumerate(classes):
                d = np.concatenate(parts)
                if len(d) == 0:
                    continue
                mean, err = d.mean(0) - low, d.std(0) * 1.96 / np.sqrt(size)
                dm = max(dm, np.abs(mean - np.array(e["mean"][i])).max())
                dc = max(dc, np.abs(err - np.array(e["ci95"][i])).max())
            print(f"  AIE {kind:6s} max |mean diff| {dm:.3e}  max |CI diff| {dc:.3e}  ({size} prompts)")


if __name__ == "__main__":
    main()
