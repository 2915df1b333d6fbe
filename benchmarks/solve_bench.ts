/**
 * The edit updates' SPD solve A x = b (ROME's C⁻¹k; MEMIT's (λC + KKᵀ)⁻¹K with one key here): the float64
 * host Cholesky (src/edit/linalg.ts, the baseline of each group) against the GPU's float32 blocked
 * Cholesky with float64 refinement (src/gpu/cholesky.ts through src/edit/solve_backend.ts), factor and
 * solve together as an editor runs them, at n = 256, 1024 and 3072 (the MLP widths of the world model ×
 * ⅔, GPT-2 small, GPT-2 small's 3072 itself). A is diagonally dominant SPD (2I + S/√n, S uniform
 * symmetric: κ ≈ 2, built in O(n²)); the cost of both factorisations does not depend on κ, the
 * refinement's step count does (3 here; 5–7 at κ 1e4–1e6, tests/cholesky_test.ts). `deno bench` prints the
 * same-run ratio against the host in each group.
 */
import { getGpu } from "../src/gpu/device.ts";
import { choleskyRegularized, choleskySolve } from "../src/edit/linalg.ts";
import { factorSpd } from "../src/edit/solve_backend.ts";
import { mulberry32 } from "../src/model/generate.ts";

const gpu = await getGpu();

function dominantSpd(n: number, seed: number): { a: Float64Array; b: Float64Array } {
  const r = mulberry32(seed);
  const a = new Float64Array(n * n), s = 1 / Math.sqrt(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) a[i * n + j] = a[j * n + i] = (r() - 0.5) * s;
    a[i * n + i] = 2;
  }
  return { a, b: Float64Array.from({ length: n }, () => r() - 0.5) };
}

for (const n of [256, 1024, 3072]) {
  const { a, b } = dominantSpd(n, n);
  // One iteration at 3072 (the host takes tens of seconds there on llvmpipe's machine).
  const runs = n >= 3072 ? { n: 1, warmup: 0 } : { n: 3, warmup: 1 };
  Deno.bench(`SPD solve ${n}×${n}, 1 rhs: host float64 Cholesky`, {
    group: `solve ${n}`,
    baseline: true,
    ...runs,
  }, () => {
    choleskySolve(choleskyRegularized(a, n), b, 1);
  });
  Deno.bench(`SPD solve ${n}×${n}, 1 rhs: GPU float32 Cholesky + float64 refinement`, {
    group: `solve ${n}`,
    ...runs,
  }, async () => {
    const f = await factorSpd(a, n, { backend: "gpu", gpu, warn: (w) => console.error(w) });
    try {
      await f.solve(b, 1);
    } finally {
      f.destroy();
    }
  });
}
