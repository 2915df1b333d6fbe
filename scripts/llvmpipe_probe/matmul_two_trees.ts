// Scratch probe (docs/notes/issue-15-kwindows.md): engram matmul (variant V) from two source trees in one process,
// alternating per round, median GFLOP/s. `TREES=/work/main,/tmp/prev deno run -A scripts/llvmpipe_probe/matmul_two_trees.ts`
const trees = (Deno.env.get("TREES") ?? "/work/main,/tmp/prev").split(",");
const variant = Deno.env.get("V") ?? "ubo8x16";
const shapes: number[][] = JSON.parse(
  Deno.env.get("SHAPES") ?? "[[1024,1024,1024],[512,768,3072],[286,384,96],[286,96,384],[1536,1284,96]]",
);
const trans = Deno.env.get("TR") ?? "nn";
const rounds = Number(Deno.env.get("ROUNDS") ?? 6);
const T = [];
for (const tree of trees) {
  const { getGpu } = await import(`${tree}/src/gpu/device.ts`);
  const { matmul } = await import(`${tree}/src/gpu/matmul.ts`);
  const { createTensor } = await import(`${tree}/src/gpu/tensor.ts`);
  T.push({ tree, gpu: await getGpu(), matmul, createTensor });
}
const res: Record<string, Record<string, number[]>> = {};
for (const [M, N, K] of shapes) {
  const key = `${M}x${N}x${K}`;
  res[key] = {};
  const fill = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * s) * 0.5);
  const setup = T.map((t) => {
    const a = t.createTensor(t.gpu, [M * K], { name: "a", data: fill(M * K, 0.7368) });
    const b = t.createTensor(t.gpu, [K * N], { name: "b", data: fill(K * N, 1.3137) });
    const o = t.createTensor(t.gpu, [M * N], { name: "o" });
    return () =>
      t.matmul(t.gpu, a, b, o, { M, N, K, transA: trans[0] === "t", transB: trans[1] === "t", variant });
  });
  const calls = Math.min(32, Math.max(4, Math.ceil(1e9 / (2 * M * N * K))));
  for (let i = 0; i < T.length; i++) {
    await setup[i]();
    await T[i].gpu.flush();
  }
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < T.length; i++) {
      const t0 = performance.now();
      for (let j = 0; j < calls; j++) await setup[i]();
      await T[i].gpu.flush();
      (res[key][T[i].tree] ??= []).push(2 * M * N * K * calls / (performance.now() - t0) / 1e6);
    }
  }
}
const med = (x: number[]) => {
  const s = [...x].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
for (const [k, v] of Object.entries(res)) {
  const m = trees.map((t) => med(v[t]));
  console.log(
    k,
    trans,
    trees.map((t, i) => `${t}: ${m[i].toFixed(2)} (max ${Math.max(...v[t]).toFixed(2)})`).join("  "),
    `ratio ${(m[0] / m[1]).toFixed(2)}`,
  );
}
