#!/usr/bin/env python3
"""world_probe.py: does a toy GPT-2 trained on a synthetic world store its facts "ROME-shaped"?

A measuring stick for corpus design (engram issue 16), NOT part of engram. PyTorch (CPU) only.

Given a world folder in the fixture-world layout (train.jsonl with "text"; train_prompts.jsonl and
heldout.jsonl with "prompt", "subject", "answer"; tokenizer.json, the world's word-level byte-BPE), it
  1. trains a GPT-2 like `engram train` does (src/train/trainer.ts): pre-LN, learned positions, gelu_new,
     tied head, init N(0, 0.02) for every matrix (biases 0, LN weights 1), instances
     [eos] + text + [eos], loss on every next token (padding not counted), AdamW (0.9, 0.999, 1e-8),
     weight decay on matrices only, linear warm-up then cosine to min_lr_ratio, global-norm clip,
     length-bucketed batches (windows of `length_buckets` batches sorted by length);
     or loads a model.safetensors (--load, HF GPT-2 names, Conv1D [in, out] layout);
  2. measures top-1 recall of the answer's first token after [eos] + prompt (engram's `accuracy`);
  3. runs ROME causal tracing (kmeng01/rome experiments/causal_trace.py; engram src/locate/trace.ts)
     averaged over N correctly-recalled facts: subject token embeddings + std * numpy
     RandomState(seed).randn(samples, n_subject_tokens, C) (the same draws for every restoration),
     std = noise_mult x std of the wte values of every subject of the facts file (each subject encoded
     alone, with repetition: engram's --noise-basis subjects = ROME's collect_embedding_std); restored
     per (token, layer): hidden (output of block l), mlp / attn outputs over a window of w layers
     [max(0, l - w//2), min(L, l + ceil(w/2))); score = mean over samples of p(answer) at the last
     position; token-class averages pooled per token as ROME's average_causal_effects notebook
     (class mean = mean of pooled restored scores - mean corrupted score).
Prints the tables and a verdict; --out DIR writes probe.json (and, when trained, the model as an HF
folder that engram can load).

Run it with /usr/bin/python3 (Debian python3-torch) under nice, one thread: Debian's torch calls the
system libblas.so.3, which is the netlib reference BLAS (0.4 GFLOP/s) unless libopenblas0-pthread is
installed (it takes over the alternative): `OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 15
/usr/bin/python3 world_probe.py fixtures/world --out DIR`.
"""
import argparse
import json
import math
import os
import struct
import sys
import time
import unicodedata

import numpy as np
import torch
import torch.nn.functional as F

EOS = "<|endoftext|>"
CLASSES = [
    "first subject token",
    "middle subject tokens",
    "last subject token",
    "first subsequent token",
    "further tokens",
    "last token",
]
KINDS = ["hidden", "mlp", "attn"]


# ----------------------------------------------------------------------------------------------- tokenizer


def bytes_to_unicode():
    """GPT-2's byte -> symbol map (ids 0..255 of the world tokenizer are these symbols in this order)."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _category(ch):
    c = unicodedata.category(ch)
    return "L" if c.startswith("L") else "N" if c.startswith("N") else "S" if not ch.isspace() else " "


class WorldTokenizer:
    """The world tokenizer.json (byte-level BPE). Texts are single-spaced words, each word letters-only,
    digits-only or punctuation-only (world.ts's isWorldWord), so GPT-2's pre-tokenizer splits them into
    "w" (first word) and " w" pre-tokens; each is looked up whole and, if absent, BPE-merged by rank."""

    def __init__(self, folder):
        tj = json.load(open(os.path.join(folder, "tokenizer.json")))
        self.vocab = tj["model"]["vocab"]
        self.inv = {i: s for s, i in self.vocab.items()}
        for t in tj.get("added_tokens", []):
            self.vocab[t["content"]] = t["id"]
            self.inv[t["id"]] = t["content"]
        self.eos = self.vocab[EOS]
        self.size = max(self.inv) + 1
        merges = tj["model"]["merges"]
        self.ranks = {}
        for r, m in enumerate(merges):
            a, b = m.split(" ") if isinstance(m, str) else m
            self.ranks[(a, b)] = r
        self.b2u = bytes_to_unicode()
        self.u2b = {v: k for k, v in self.b2u.items()}
        self.cache = {}

    def _bpe(self, piece):
        if piece in self.vocab:
            return [self.vocab[piece]]
        syms = list(piece)
        while len(syms) > 1:
            best, at = None, -1
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, i
            if best is None:
                break
            syms[at:at + 2] = [syms[at] + syms[at + 1]]
        return [self.vocab[s] for s in syms]

    def encode(self, text):
        """Ids of `text` (no eos). Raises ValueError for text outside the world's word rules."""
        if text in self.cache:
            return self.cache[text]
        if text != text.strip(" ") and not text.startswith(" "):
            raise ValueError(f"trailing space in {text!r}")
        words = text.split(" ")
        lead = ""
        if words and words[0] == "":  # a continuation (" Paris")
            words = words[1:]
            lead = " "
        ids = []
        for i, w in enumerate(words):
            if w == "" or len({_category(c) for c in w}) != 1 or "'" in w:
                raise ValueError(f"word {w!r} of {text!r} is not one world word")
            piece = (lead if i == 0 else " ") + w
            ids += self._bpe("".join(self.b2u[b] for b in piece.encode("utf-8")))
        self.cache[text] = ids
        return ids

    def decode_token(self, i):
        s = self.inv[i]
        if s == EOS:
            return s
        return bytes(self.u2b[c] for c in s).decode("utf-8", "replace")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def encode_prompt(tok, rec):
    """[eos] + prompt ids, subject token range [a, b) in those ids (ROME's find_token_range: the tokens
    overlapping the subject's first occurrence), the answer's first token id."""
    prompt, subject = rec["prompt"], rec["subject"]
    body = tok.encode(prompt)
    cs = prompt.find(subject)
    if cs < 0:
        raise ValueError(f"subject {subject!r} not in prompt {prompt!r}")
    ce = cs + len(subject)
    a = b = -1
    pos = 0
    for i, t in enumerate(body):
        s = tok.decode_token(t)
        if pos < ce and pos + len(s) > cs:
            if a < 0:
                a = i
            b = i + 1
        pos += len(s)
    ans = rec["answer"]
    ans_ids = tok.encode(ans if ans.startswith(" ") else " " + ans)
    return [tok.eos] + body, (a + 1, b + 1), ans_ids[0]


# ----------------------------------------------------------------------------------------------- model


class GPT2(torch.nn.Module):
    """GPT-2 (pre-LN, learned positions, gelu_new, tied head) with HF parameter names and Conv1D layout,
    and a forward that can add noise to token embeddings and restore recorded states per (row, token)."""

    def __init__(self, vocab, n_layer, n_embd, n_head, n_pos, inner=None, parallel=False):
        super().__init__()
        self.L, self.C, self.H, self.P, self.V = n_layer, n_embd, n_head, n_pos, vocab
        # parallel: attention and MLP both read the block's input (GPT-J / NeoX), each through its own norm.
        self.parallel = parallel
        I = inner or 4 * n_embd
        self.I = I
        self.shapes = {"transformer.wte.weight": (vocab, n_embd), "transformer.wpe.weight": (n_pos, n_embd)}
        for l in range(n_layer):
            p = f"transformer.h.{l}."
            self.shapes.update({
                p + "ln_1.weight": (n_embd,), p + "ln_1.bias": (n_embd,),
                p + "attn.c_attn.weight": (n_embd, 3 * n_embd), p + "attn.c_attn.bias": (3 * n_embd,),
                p + "attn.c_proj.weight": (n_embd, n_embd), p + "attn.c_proj.bias": (n_embd,),
                p + "ln_2.weight": (n_embd,), p + "ln_2.bias": (n_embd,),
                p + "mlp.c_fc.weight": (n_embd, I), p + "mlp.c_fc.bias": (I,),
                p + "mlp.c_proj.weight": (I, n_embd), p + "mlp.c_proj.bias": (n_embd,),
            })
        self.shapes["transformer.ln_f.weight"] = (n_embd,)
        self.shapes["transformer.ln_f.bias"] = (n_embd,)
        self.p = torch.nn.ParameterDict()
        for k, s in self.shapes.items():
            self.p[k.replace(".", "__")] = torch.nn.Parameter(torch.zeros(s))

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def init_weights(self, std, gen):
        with torch.no_grad():
            for k, s in self.shapes.items():
                t = self.w(k)
                if len(s) >= 2:
                    t.copy_(torch.randn(s, generator=gen) * std)
                elif k.endswith("ln_1.weight") or k.endswith("ln_2.weight") or k.endswith("ln_f.weight"):
                    t.fill_(1.0)
                else:
                    t.zero_()

    def attn(self, l, x, kpre=None, vpre=None):
        """Attention output of block l for x [B, T', C] (the residual at positions P..P+T'-1), keys and values
        of positions 0..P-1 given by kpre / vpre [B, H, P, d]; returns (out, k, v) of the T' positions."""
        B, T, C = x.shape
        H, p = self.H, f"transformer.h.{l}."
        h = F.layer_norm(x, (C,), self.w(p + "ln_1.weight"), self.w(p + "ln_1.bias"), 1e-5)
        qkv = h @ self.w(p + "attn.c_attn.weight") + self.w(p + "attn.c_attn.bias")
        q, k, v = (z.view(B, T, H, C // H).transpose(1, 2) for z in qkv.split(C, dim=2))
        ka, va = (k, v) if kpre is None else (torch.cat([kpre, k], 2), torch.cat([vpre, v], 2))
        P = ka.shape[2] - T
        att = (q @ ka.transpose(-1, -2)) / math.sqrt(C // H)
        allowed = torch.ones(T, P + T, dtype=torch.bool).tril(diagonal=P)
        att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
        a = (att @ va).transpose(1, 2).reshape(B, T, C)
        return a @ self.w(p + "attn.c_proj.weight") + self.w(p + "attn.c_proj.bias"), k, v

    def mlp(self, l, x):
        C, p = self.C, f"transformer.h.{l}."
        h = F.layer_norm(x, (C,), self.w(p + "ln_2.weight"), self.w(p + "ln_2.bias"), 1e-5)
        m = F.gelu(h @ self.w(p + "mlp.c_fc.weight") + self.w(p + "mlp.c_fc.bias"), approximate="tanh")
        return m @ self.w(p + "mlp.c_proj.weight") + self.w(p + "mlp.c_proj.bias")

    def head(self, x):
        x = F.layer_norm(x, (self.C,), self.w("transformer.ln_f.weight"), self.w("transformer.ln_f.bias"), 1e-5)
        return x @ self.w("transformer.wte.weight").t()

    def forward(self, ids, noise=None, restore=None, record=False):
        """ids [B, T] -> logits [B, T, V]. noise: [B, T, C] added to token embeddings. restore:
        {(kind, l): (mask [B, T] bool, clean [T, C])} replaces that state where mask is set. record: also
        return {(kind, l): [B, T, C]} of the states (hidden = residual after block l), ("in", l): the
        residual entering block l (l = L: after the last block), ("k", l) / ("v", l): keys and values."""
        B, T = ids.shape
        x = self.w("transformer.wte.weight")[ids]
        if noise is not None:
            x = x + noise
        x = x + self.w("transformer.wpe.weight")[:T][None]
        rec = {}

        def site(kind, l, v):
            if record:
                rec[(kind, l)] = v.detach()
            if restore is not None and (kind, l) in restore:
                m, clean = restore[(kind, l)]
                v = torch.where(m[:, :, None], clean[None], v)
            return v

        for l in range(self.L):
            if record:
                rec[("in", l)] = x.detach()
            a, k, v = self.attn(l, x)
            if record:
                rec[("k", l)], rec[("v", l)] = k.detach(), v.detach()
            if self.parallel:
                x = x + site("attn", l, a) + site("mlp", l, self.mlp(l, x))
            else:
                x = x + site("attn", l, a)
                x = x + site("mlp", l, self.mlp(l, x))
            x = site("hidden", l, x)
        if record:
            rec[("in", self.L)] = x.detach()
        logits = self.head(x)
        return (logits, rec) if record else logits

    def run_from(self, s, x, kv, restore):
        """Blocks s..L-1 on x [R, T', C], the residual entering block s at the last T' positions, with the
        keys / values of the earlier positions kv[l] = (k, v) [R, H, P, d]; restore {(kind, l): (rows [R]
        bool, clean [C])} replaces that state at the FIRST of the T' positions in those rows. Returns
        logits at the last position [R, V]."""
        for l in range(s, self.L):
            a, _, _ = self.attn(l, x, *kv[l])
            if ("attn", l) in restore:
                m, c = restore[("attn", l)]
                a[:, 0] = torch.where(m[:, None], c[None], a[:, 0])
            mo = self.mlp(l, x) if self.parallel else None
            x = x + a
            if mo is None:
                mo = self.mlp(l, x)
            if ("mlp", l) in restore:
                m, c = restore[("mlp", l)]
                mo[:, 0] = torch.where(m[:, None], c[None], mo[:, 0])
            x = x + mo
        return self.head(x[:, -1])


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if v["dtype"] != "F32":
            raise ValueError(f"{path}: {k} is {v['dtype']}, only F32 is read")
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"])
    return out


def write_safetensors(path, tensors):
    header, off, blobs = {}, 0, []
    for k in sorted(tensors):
        b = np.ascontiguousarray(tensors[k], dtype="<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_model(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    model = GPT2(cfg["vocab_size"], cfg["n_layer"], cfg["n_embd"], cfg["n_head"], cfg["n_positions"],
                 cfg.get("n_inner"))
    st = read_safetensors(os.path.join(folder, "model.safetensors"))
    with torch.no_grad():
        for k in model.shapes:
            if k not in st:
                raise ValueError(f"{folder}: missing weight {k}")
            if tuple(st[k].shape) != model.shapes[k]:
                raise ValueError(f"{folder}: {k} has shape {st[k].shape}, expected {model.shapes[k]}")
            model.w(k).copy_(torch.from_numpy(st[k].copy()))
    return model


def save_model(model, folder, world):
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, "model.safetensors"),
                      {k: model.w(k).detach().numpy() for k in model.shapes})
    eos = WorldTokenizer(world).eos
    cfg = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
           "n_ctx": model.P, "n_positions": model.P, "n_embd": model.C, "n_head": model.H,
           "n_layer": model.L, "n_inner": None if model.I == 4 * model.C else model.I, "vocab_size": model.V, "layer_norm_epsilon": 1e-5,
           "attn_pdrop": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0, "scale_attn_weights": True,
           "initializer_range": 0.02, "torch_dtype": "float32", "bos_token_id": eos, "eos_token_id": eos}
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"), indent=2)
    for n in ["tokenizer.json", "tokenizer_config.json"]:
        src = os.path.join(world, n)
        if os.path.exists(src):
            open(os.path.join(folder, n), "w").write(open(src).read())


# ----------------------------------------------------------------------------------------------- training


def train(model, data, args, log):
    """engram's trainer (see the module doc); returns (seconds, per-epoch mean losses)."""
    rng = np.random.RandomState(args.seed)
    decay = [model.w(k) for k, s in model.shapes.items() if len(s) >= 2]
    no_decay = [model.w(k) for k, s in model.shapes.items() if len(s) < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = math.ceil(len(data) / args.batch)
    total = args.epochs * steps_per_epoch
    min_lr = args.lr * args.min_lr_ratio

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p = 1.0 if total <= args.warmup else (step - args.warmup) / max(1, total - args.warmup)
        return min_lr + 0.5 * (args.lr - min_lr) * (1 + math.cos(math.pi * min(1.0, p)))

    t0 = time.time()
    step = 0
    losses = []
    for epoch in range(args.epochs):
        order = rng.permutation(len(data))
        win = args.batch * max(1, args.length_buckets)
        batches = []
        for w0 in range(0, len(order), win):
            part = list(order[w0:w0 + win])
            if args.length_buckets > 1:
                part.sort(key=lambda i: len(data[i]))
            batches += [part[i:i + args.batch] for i in range(0, len(part), args.batch)]
        if args.length_buckets > 1:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        ep = []
        for bidx in batches:
            T = max(len(data[i]) for i in bidx) - 1
            inp = np.full((len(bidx), T), data[bidx[0]][0], dtype=np.int64)  # pad with eos
            tgt = np.full((len(bidx), T), -1, dtype=np.int64)
            for r, i in enumerate(bidx):
                x = data[i]
                inp[r, :len(x) - 1] = x[:-1]
                tgt[r, :len(x) - 1] = x[1:]
            logits = model(torch.from_numpy(inp))
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(tgt).reshape(-1),
                                   ignore_index=-1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters()))
            if args.clip > 0 and norm > args.clip:
                for p in model.parameters():
                    p.grad.mul_(args.clip / float(norm))
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            opt.step()
            step += 1
            ep.append(float(loss))
            if step % 50 == 0:
                log(f"  step {step}/{total}: loss {ep[-1]:.4f}, {time.time() - t0:.0f} s")
        losses.append(float(np.mean(ep)))
        log(f"epoch {epoch + 1}/{args.epochs}: mean loss {losses[-1]:.4f}, last {ep[-1]:.4f}, "
            f"{time.time() - t0:.0f} s")
    return time.time() - t0, losses


# ----------------------------------------------------------------------------------------------- recall


@torch.no_grad()
def recall(model, tok, recs):
    """Top-1 of the answer's first token after [eos] + prompt; per relation; mean p(answer)."""
    enc = [encode_prompt(tok, r) for r in recs]
    by_len = {}
    for i, (ids, _, _) in enumerate(enc):
        by_len.setdefault(len(ids), []).append(i)
    correct = np.zeros(len(recs), dtype=bool)
    prob = np.zeros(len(recs))
    for T, idx in by_len.items():
        for s in range(0, len(idx), 512):
            part = idx[s:s + 512]
            ids = torch.tensor([enc[i][0] for i in part])
            p = model(ids)[:, -1].softmax(-1)
            ans = torch.tensor([enc[i][2] for i in part])
            correct[part] = (p.argmax(-1) == ans).numpy()
            prob[part] = p[torch.arange(len(part)), ans].numpy()
    groups = {}
    for i, r in enumerate(recs):
        g = groups.setdefault(r.get("relation", "?"), [0, 0])
        g[0] += 1
        g[1] += int(correct[i])
    return {"n": len(recs), "accuracy": float(correct.mean()), "mean_answer_prob": float(prob.mean()),
            "by_relation": {k: v[1] / v[0] for k, v in sorted(groups.items())}}, correct


# ----------------------------------------------------------------------------------------------- tracing


def window_layers(kind, l, w, L):
    if kind == "hidden":
        return [l]
    return list(range(max(0, l - w // 2), min(L, l + (w + 1) // 2)))


def class_positions(T, a, b):
    last = T - 1
    return [[a], list(range(a + 1, b - 1)), [b - 1], [b] if b <= last else [], list(range(b + 1, last)),
            [last]]


@torch.no_grad()
def trace_fact(model, ids, rng_span, ans, std, samples, window, seed, max_rows):
    """ROME trace of one prompt: {kind: scores [T, L]} (p restored), p_clean, p_corrupt."""
    L, C = model.L, model.C
    T = len(ids)
    a, b = rng_span
    x = torch.tensor([ids])
    logits, rec = model(x, record=True)
    p_clean = float(logits[0, -1].softmax(-1)[ans])
    noise1 = torch.from_numpy(
        (np.random.RandomState(seed).randn(samples, b - a, C) * std).astype(np.float32))
    # restorations: (kind, token, layer); tokens before the subject cannot change anything (noise starts
    # at a), nor can the last layer's hidden state before the last token: they score p_corrupt.
    jobs = [(k, t, l) for k in KINDS for t in range(a, T) for l in range(L)
            if not (k == "hidden" and l == L - 1 and t < T - 1)]
    groups = [None] + jobs  # group 0: nothing restored
    scores_g = np.zeros(len(groups))
    per = max(1, max_rows // samples)
    for g0 in range(0, len(groups), per):
        chunk = groups[g0:g0 + per]
        R = len(chunk) * samples
        noise = torch.zeros(R, T, C)
        noise[:, a:b] = noise1.repeat(len(chunk), 1, 1)
        masks = {}
        for gi, job in enumerate(chunk):
            if job is None:
                continue
            k, t, l = job
            for ll in window_layers(k, l, window, L):
                m = masks.setdefault((k, ll), np.zeros((R, T), dtype=bool))
                m[gi * samples:(gi + 1) * samples, t] = True
        restore = {key: (torch.from_numpy(m), rec[key][0]) for key, m in masks.items()}
        out = model(x.expand(R, T), noise=noise, restore=restore)
        p = out[:, -1].softmax(-1)[:, ans].reshape(len(chunk), samples).mean(1)
        scores_g[g0:g0 + len(chunk)] = p.numpy()
    low = float(scores_g[0])
    scores = {k: np.full((T, L), low) for k in KINDS}
    for job, s in zip(jobs, scores_g[1:]):
        k, t, l = job
        scores[k][t, l] = s
    return scores, p_clean, low


@torch.no_grad()
def trace_fact_fast(model, ids, rng_span, ans, std, samples, window, seed, max_rows):
    """The same numbers as trace_fact, cheaper: a restoration at (token t, first restored layer s) leaves
    every state of earlier tokens, and of every token below layer s, as in the corrupted run, so only
    tokens t.. from block s on are recomputed, on the corrupted run's residual and keys / values."""
    L, C = model.L, model.C
    T = len(ids)
    a, b = rng_span
    S = samples
    x = torch.tensor([ids])
    logits, clean = model(x, record=True)
    p_clean = float(logits[0, -1].softmax(-1)[ans])
    noise = torch.zeros(S, T, C)
    noise[:, a:b] = torch.from_numpy(
        (np.random.RandomState(seed).randn(S, b - a, C) * std).astype(np.float32))
    blog, base = model(x.expand(S, T), noise=noise, record=True)
    low = float(blog[:, -1].softmax(-1)[:, ans].mean())
    jobs = [(k, t, l) for k in KINDS for t in range(a, T) for l in range(L)
            if not (k == "hidden" and l == L - 1 and t < T - 1)]
    groups = {}
    for j, (k, t, l) in enumerate(jobs):
        s0 = l + 1 if k == "hidden" else window_layers(k, l, window, L)[0]
        groups.setdefault((t, s0), []).append(j)
    per = max(1, max_rows // S)
    got = np.zeros(len(jobs))
    for (t, s0), js in groups.items():
        for c0 in range(0, len(js), per):
            part = js[c0:c0 + per]
            n = len(part)
            xin = base[("in", s0)][:, t:].repeat(n, 1, 1)  # row = job * S + sample
            masks = {}
            for gi, j in enumerate(part):
                k, _, l = jobs[j]
                if k == "hidden":
                    xin[gi * S:(gi + 1) * S, 0] = clean[("hidden", l)][0, t]
                else:
                    for ll in window_layers(k, l, window, L):
                        m = masks.setdefault((k, ll), torch.zeros(n * S, dtype=torch.bool))
                        m[gi * S:(gi + 1) * S] = True
            restore = {key: (m, clean[key][0, t]) for key, m in masks.items()}
            kv = {l: (base[("k", l)][:, :, :t].repeat(n, 1, 1, 1), base[("v", l)][:, :, :t].repeat(n, 1, 1, 1))
                  for l in range(s0, L)}
            out = model.run_from(s0, xin, kv, restore)
            got[part] = out.softmax(-1)[:, ans].reshape(n, S).mean(1).numpy()
    scores = {k: np.full((T, L), low) for k in KINDS}
    for (k, t, l), v in zip(jobs, got):
        scores[k][t, l] = v
    return scores, p_clean, low


def trace_many(model, tok, facts, basis_recs, args, log):
    # noise std: noise_mult x std of wte values over the tokens of every subject of the facts file,
    # each subject encoded alone (ROME collect_embedding_std; engram --noise-basis subjects).
    wte = model.w("transformer.wte.weight").detach().double().numpy()
    ids = [i for r in basis_recs for i in tok.encode(r["subject"])]
    emb_std = float(wte[ids].std(ddof=1))
    std = args.noise_mult * emb_std
    L = model.L
    pooled = {k: [[[] for _ in range(L)] for _ in CLASSES] for k in KINDS}
    lows, cleans, n_tok, per_fact = [], [], [], []
    t0 = time.time()
    for fi, r in enumerate(facts):
        ids_, span, ans = encode_prompt(tok, r)
        fn = trace_fact_fast if args.trace_impl == "fast" else trace_fact
        scores, pc, low = fn(model, ids_, span, ans, std, args.samples, args.window, args.noise_seed,
                                     args.max_rows)
        lows.append(low)
        cleans.append(pc)
        per_fact.append({"id": r.get("id"), "prompt": r["prompt"], "p_clean": pc, "p_corrupt": low})
        n_tok.append(len(ids_))
        for ci, pos in enumerate(class_positions(len(ids_), *span)):
            for k in KINDS:
                for l in range(L):
                    pooled[k][ci][l] += [scores[k][t, l] for t in pos]
        if (fi + 1) % 25 == 0:
            log(f"  traced {fi + 1}/{len(facts)} facts, {time.time() - t0:.0f} s")
    low = float(np.mean(lows))
    tables = {}
    for k in KINDS:
        mean = [[(float(np.mean(pooled[k][ci][l])) - low) if pooled[k][ci][l] else None for l in range(L)]
                for ci in range(len(CLASSES))]
        ci95 = [[(1.96 * float(np.std(pooled[k][ci][l])) / math.sqrt(len(facts))) if pooled[k][ci][l] else None
                 for l in range(L)] for ci in range(len(CLASSES))]
        tables[k] = {"mean": mean, "ci95": ci95, "count": [len(pooled[k][ci][0]) for ci in range(len(CLASSES))]}
    return {"facts": len(facts), "noise_std": std, "embedding_std": emb_std, "samples": args.samples,
            "window": args.window, "p_clean": float(np.mean(cleans)), "p_corrupt": low,
            "total_effect": float(np.mean(cleans)) - low, "mean_tokens": float(np.mean(n_tok)),
            "seconds": time.time() - t0, "classes": CLASSES, "tables": tables, "per_fact": per_fact}


def verdict(tr, L):
    def argmax(k):
        best = None
        for ci, row in enumerate(tr["tables"][k]["mean"]):
            for l, v in enumerate(row):
                if v is not None and (best is None or v > best[0]):
                    best = (v, CLASSES[ci], l)
        return {"effect": best[0], "class": best[1], "layer": best[2]}

    mid = list(range(L // 4, max(L // 4 + 1, math.ceil(3 * L / 4))))
    mlp = tr["tables"]["mlp"]["mean"]
    subj_mid = max(mlp[2][l] for l in mid)
    last_any = max(mlp[5])
    attn = tr["tables"]["attn"]["mean"]
    return {"max_mlp": argmax("mlp"), "max_attn": argmax("attn"), "max_hidden": argmax("hidden"),
            "mid_layers": mid, "mlp_last_subject_mid_max": subj_mid, "mlp_last_token_max": last_any,
            "attn_last_token_max": max(attn[5]), "attn_last_subject_max": max(attn[2]),
            "rome_shaped_mlp": bool(subj_mid > last_any),
            # In a 4-layer model the subject is composed and looked up in block 0, below the "mid" layers.
            "mlp_last_subject_max": max(mlp[2]), "rome_shaped_mlp_any_layer": bool(max(mlp[2]) > last_any)}


def print_tables(tr, log):
    L = len(tr["tables"]["hidden"]["mean"][0])
    for k in KINDS:
        log(f"\n{k} (average indirect effect; window {1 if k == 'hidden' else tr['window']}; "
            f"{tr['facts']} facts)")
        log(f"{'':24s}" + "".join(f"{'L' + str(l):>9s}" for l in range(L)) + "   n")
        for ci, c in enumerate(CLASSES):
            row = tr["tables"][k]["mean"][ci]
            log(f"{c:24s}" + "".join(f"{v:9.3f}" if v is not None else f"{'-':>9s}" for v in row)
                + f"   {tr['tables'][k]['count'][ci]}")


# ----------------------------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("world", help="world folder (train.jsonl, train_prompts.jsonl, heldout.jsonl, tokenizer.json)")
    ap.add_argument("--load", help="trace/score this HF model folder (model.safetensors) instead of training")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--inner", type=int, default=0, help="MLP hidden size; 0: 4 x width")
    ap.add_argument("--parallel", action="store_true",
                    help="parallel blocks (x + attn(ln_1 x) + mlp(ln_2 x), as GPT-J / NeoX): a measuring variant, "
                         "not what engram train writes; its model is not saved")
    ap.add_argument("--ctx", type=int, default=0, help="context (positions); 0: the longest instance, rounded up to 8")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--length-buckets", type=int, default=16)
    ap.add_argument("--init-std", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: no spinning on a shared CPU)")
    ap.add_argument("--facts", help="trace these facts (jsonl: prompt, subject, answer) instead of a sample of train_prompts")
    ap.add_argument("--trace-n", type=int, default=200, help="facts traced (correctly recalled ones)")
    ap.add_argument("--trace-filter", choices=["all", "statements"], default="all",
                    help="statements: skip prompts ending in '?'")
    ap.add_argument("--trace-order", choices=["random", "file"], default="random")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--noise-mult", type=float, default=3.0)
    ap.add_argument("--noise-seed", type=int, default=1)
    ap.add_argument("--window", type=int, default=0, help="mlp/attn window; 0: max(1, layers // 4)")
    ap.add_argument("--max-rows", type=int, default=2000, help="sequences per traced forward")
    ap.add_argument("--trace-impl", choices=["fast", "slow"], default="fast",
                    help="slow: every restoration is a full forward (the check of fast)")
    ap.add_argument("--skip-recall", action="store_true", help="with --facts: skip the recall of the world's prompt files")
    ap.add_argument("--out", help="folder for probe.json (and the trained model under model/)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out_lines = []

    def log(s):
        print(s, flush=True)
        out_lines.append(s)

    if args.load and args.parallel:
        ap.error("--parallel trains a parallel-block model; --load reads GPT-2 folders (sequential blocks)")
    tok = WorldTokenizer(args.world)
    train_prompts = read_jsonl(os.path.join(args.world, "train_prompts.jsonl"))
    heldout = read_jsonl(os.path.join(args.world, "heldout.jsonl"))
    result = {"schema": "world-probe/1", "world": os.path.abspath(args.world), "args": vars(args)}
    if args.load:
        model = load_model(args.load)
        result["model"] = os.path.abspath(args.load)
        result["train_seconds"] = None
    else:
        texts = [r["text"] for r in read_jsonl(os.path.join(args.world, "train.jsonl"))]
        data = [[tok.eos] + tok.encode(t) + [tok.eos] for t in texts]
        longest = max(len(x) for x in data) - 1
        longest_prompt = max(len(encode_prompt(tok, r)[0]) for r in train_prompts + heldout)
        need = max(longest, longest_prompt)
        ctx = args.ctx or int(math.ceil(need / 8) * 8)
        if need > ctx:
            sys.exit(f"--ctx {ctx} < {need} tokens of the longest instance / prompt")
        model = GPT2(tok.size, args.layers, args.width, args.heads, ctx, inner=args.inner or None,
                     parallel=args.parallel)
        g = torch.Generator().manual_seed(args.seed)
        model.init_weights(args.init_std, g)
        nparams = sum(p.numel() for p in model.parameters())
        log(f"train: {len(data)} instances, {sum(len(x) - 1 for x in data)} target tokens, longest "
            f"{longest + 1} tokens with eos; vocab {tok.size}; model L{args.layers} C{args.width} "
            f"H{args.heads} ctx {ctx}, {nparams} parameters")
        secs, losses = train(model, data, args, log)
        result.update({"train_seconds": secs, "epoch_losses": losses, "ctx": ctx, "parameters": nparams,
                       "steps": args.epochs * math.ceil(len(data) / args.batch)})
        log(f"trained in {secs:.0f} s")
        if args.out and not args.parallel:
            save_model(model, os.path.join(args.out, "model"), args.world)
    model.eval()
    if not args.window:
        args.window = max(1, model.L // 4)
    t0 = time.time()
    if args.skip_recall:
        rec_train = rec_held = None
        ok_train = np.ones(len(train_prompts), dtype=bool)
    else:
        rec_train, ok_train = recall(model, tok, train_prompts)
        rec_held, _ = recall(model, tok, heldout)
    if rec_train:
        log(f"recall: train {rec_train['accuracy'] * 100:.2f}% of {rec_train['n']} (mean p "
            f"{rec_train['mean_answer_prob']:.3f}), heldout {rec_held['accuracy'] * 100:.2f}% of "
            f"{rec_held['n']} (mean p {rec_held['mean_answer_prob']:.3f}); {time.time() - t0:.0f} s")
        log("  heldout by relation: " + ", ".join(f"{k} {v * 100:.1f}%" for k, v in rec_held["by_relation"].items()))
    result["recall"] = {"train": rec_train, "heldout": rec_held}

    if args.facts:
        basis = read_jsonl(args.facts)
        cand = basis
        _, ok = recall(model, tok, cand)
        facts = [r for r, k in zip(cand, ok) if k][:args.trace_n]
        log(f"tracing {len(facts)} known facts of {args.facts} (of {len(cand)}; {int((~ok).sum())} unknown dropped)")
    else:
        basis = train_prompts
        idx = [i for i in range(len(train_prompts)) if ok_train[i]
               and not (args.trace_filter == "statements" and train_prompts[i]["prompt"].rstrip().endswith("?"))]
        if args.trace_order == "random":
            idx = list(np.random.RandomState(args.seed).permutation(idx))
        facts = [train_prompts[i] for i in idx[:args.trace_n]]
        log(f"tracing {len(facts)} correctly recalled train prompts ({args.trace_order}, {args.trace_filter})")
    tr = trace_many(model, tok, facts, basis, args, log)
    log(f"noise std {tr['noise_std']:.4f} (= {args.noise_mult} x {tr['embedding_std']:.4f}); p_clean "
        f"{tr['p_clean']:.3f}, p_corrupt {tr['p_corrupt']:.3f}, total effect {tr['total_effect']:.3f}; "
        f"{tr['seconds']:.0f} s")
    print_tables(tr, log)
    v = verdict(tr, model.L)
    log(f"\nverdict: max MLP effect {v['max_mlp']['effect']:.3f} at {v['max_mlp']['class']} L{v['max_mlp']['layer']}; "
        f"max attn effect {v['max_attn']['effect']:.3f} at {v['max_attn']['class']} L{v['max_attn']['layer']}; "
        f"max hidden {v['max_hidden']['effect']:.3f} at {v['max_hidden']['class']} L{v['max_hidden']['layer']}")
    log(f"  MLP at last subject token, mid layers {v['mid_layers']}: max {v['mlp_last_subject_mid_max']:.3f}; "
        f"MLP at last token, any layer: max {v['mlp_last_token_max']:.3f} -> "
        f"{'ROME-shaped (subject MLP larger)' if v['rome_shaped_mlp'] else 'NOT ROME-shaped (last-token MLP larger)'}")
    log(f"  MLP at last subject token, any layer: max {v['mlp_last_subject_max']:.3f} -> "
        f"{'subject site larger' if v['rome_shaped_mlp_any_layer'] else 'last-token site larger'}")
    result["trace"] = tr
    result["verdict"] = v
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        json.dump(result, open(os.path.join(args.out, "probe.json"), "w"), indent=1)
        open(os.path.join(args.out, "probe.txt"), "w").write("\n".join(out_lines) + "\n")


if __name__ == "__main__":
    main()
