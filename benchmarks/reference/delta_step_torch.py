"""PyTorch twin of one δ-optimisation step of ROME / MEMIT (src/edit/compute_v.ts) at the world model's
shapes, for the issue-15 ratio: a GPT-2 block stack (learned positions, pre-norm, GELU, tied head) with
random weights; δ added to the MLP output of layer 0 at one row per sequence; the loss is the NLL of the
target rows plus a KL row, as engram's; one forward and one backward w.r.t. δ only, then δ's Adam
update. This is the reference implementations' own per-step work (they recompute the whole model each
step, as kmeng01/rome's compute_v does), in float32 on the CPU with every core torch is given.

usage: python3 delta_step_torch.py B T [steps] [threads]   prints JSON {"ms_per_step": ...}
"""
import json
import math
import sys
import time

import torch

B = int(sys.argv[1])
T = int(sys.argv[2])
STEPS = int(sys.argv[3]) if len(sys.argv) > 3 else 20
if len(sys.argv) > 4:
    torch.set_num_threads(int(sys.argv[4]))
L, C, H, V, NPOS, I = 2, 96, 4, 1284, 24, 384
g = torch.Generator().manual_seed(0)


def rnd(*shape, std=0.02):
    return torch.randn(*shape, generator=g) * std


wte, wpe = rnd(V, C), rnd(NPOS, C)
layers = [
    dict(ln1=(torch.ones(C), torch.zeros(C)), qkv=(rnd(C, 3 * C), torch.zeros(3 * C)), o=(rnd(C, C), torch.zeros(C)),
         ln2=(torch.ones(C), torch.zeros(C)), fc=(rnd(C, I), torch.zeros(I)), proj=(rnd(I, C), torch.zeros(C)))
    for _ in range(L)
]
lnf = (torch.ones(C), torch.zeros(C))
ids = torch.randint(0, V, (B, T), generator=g)
lookup = torch.randint(0, T - 2, (B,), generator=g)
rows_b = torch.arange(B)
targets = torch.randint(0, V, (B,), generator=g)
mask = torch.tril(torch.ones(T, T, dtype=torch.bool))


def ln(x, p):
    return torch.nn.functional.layer_norm(x, (C,), p[0], p[1], 1e-5)


def forward(delta):
    x = wte[ids] + wpe[:T]
    for li, p in enumerate(layers):
        h = ln(x, p["ln1"]) @ p["qkv"][0] + p["qkv"][1]
        q, k, v = h.split(C, dim=-1)
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
        a = (q @ k.transpose(-1, -2)) / math.sqrt(C // H)
        a = a.masked_fill(~mask, float("-inf")).softmax(-1)
        x = x + ((a @ v).transpose(1, 2).reshape(B, T, C) @ p["o"][0] + p["o"][1])
        m = torch.nn.functional.gelu(ln(x, p["ln2"]) @ p["fc"][0] + p["fc"][1], approximate="tanh")
        m = m @ p["proj"][0] + p["proj"][1]
        if li == 0:
            m = m.index_put((rows_b, lookup), m[rows_b, lookup] + delta)
        x = x + m
    x = ln(x, lnf)
    # Logits at the target rows only (one per sequence here; the last sequence is the KL row).
    return x[rows_b, lookup + 1] @ wte.T


delta = torch.zeros(C, requires_grad=True)
opt = torch.optim.Adam([delta], lr=0.5)
with torch.no_grad():
    p0 = torch.log_softmax(forward(delta)[-1:], -1)


def step():
    opt.zero_grad()
    lp = torch.log_softmax(forward(delta), -1)
    nll = -lp[:-1].gather(1, targets[:-1, None]).mean()
    kl = torch.nn.functional.kl_div(p0, lp[-1:], log_target=True, reduction="batchmean")
    (nll + 0.0625 * kl + 0.5 * delta.norm()).backward()
    opt.step()


for _ in range(3):
    step()
t0 = time.perf_counter()
for _ in range(STEPS):
    step()
ms = (time.perf_counter() - t0) / STEPS * 1000
print(json.dumps({"B": B, "T": T, "threads": torch.get_num_threads(), "ms_per_step": ms}))
