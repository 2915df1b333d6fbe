// Scratch probe (docs/notes/issue-15-kwindows.md): ms per training step (steps 11-40) of the tree in $TREE on its
// fixtures/world/train_config.json (works on trees from before scripts/profile_train.ts existed).
// `TREE=/tmp/orig ENGRAM_CACHE=/tmp/c deno run -A scripts/llvmpipe_probe/train_step_tree.ts`
const TREE = Deno.env.get("TREE")!;
const { getGpu } = await import(`${TREE}/src/gpu/device.ts`);
const { readTrainConfig } = await import(`${TREE}/src/train/config.ts`);
const { train } = await import(`${TREE}/src/train/trainer.ts`);
const steps = 40, skip = 10;
const gpu = await getGpu();
const tmp = await Deno.makeTempDir();
const cfg = {
  ...(await readTrainConfig(`${TREE}/fixtures/world/train_config.json`)),
  out: `${tmp}/model`,
  checkpointEvery: 0,
};
let t0 = 0, ms = 0;
await train(gpu, cfg, {
  maxSteps: steps,
  onStep: (e: { step: number }) => {
    if (e.step === skip) t0 = performance.now();
    if (e.step === steps) ms = (performance.now() - t0) / (steps - skip);
  },
});
console.log(JSON.stringify({ tree: TREE, msPerStep: +ms.toFixed(1), load: Deno.loadavg()[0] }));
await Deno.remove(tmp, { recursive: true });
