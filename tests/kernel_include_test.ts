/**
 * The kernel loader's `//#include`: recursive, each file pasted once, cycle-safe, typed errors naming
 * the including file; kernels/mod.ts matches the folder; and every kernel in kernels/ compiles once its
 * includes are resolved.
 */
import assert from "node:assert/strict";
import { GpuError } from "../src/errors.ts";
import { getGpu } from "../src/gpu/device.ts";
import { KERNEL_FILES } from "../kernels/mod.ts";
import { kernelsModule, listWgsl } from "../scripts/gen_kernels.ts";
import {
  expandKernel,
  expandKernelF16,
  expandKernelSubgroups,
  KernelIncludeError,
  kernelSource,
  type KernelSources,
  PROJECT_KERNELS,
} from "../src/gpu/pipeline.ts";

const KERNELS = new URL("../kernels/", import.meta.url);

/** Kernel sources named `kern` with the given files (path -> text), as a test fixture. */
function fixture(files: Record<string, string>): KernelSources {
  return { root: "kern", files };
}

Deno.test("includes resolve recursively, relative to the including file, each file once", () => {
  const t = fixture({
    "main.wgsl": [
      "// main",
      '//#include "lib/a.wgsl"',
      '  //#include  "lib/b.wgsl"  ',
      '// see //#include "nope.wgsl" (prose, not a directive)',
      "fn main_end() {}",
    ].join("\n"),
    "lib/a.wgsl": ['//#include "b.wgsl"', "fn a() {}"].join("\n"),
    // b includes a again: a cycle, and a is already pasted.
    "lib/b.wgsl": ['//#include "a.wgsl"', "fn b() {}"].join("\n"),
  });
  const { code, lines } = expandKernel("main", t);
  const out = code.split("\n");
  assert.deepEqual(out, [
    "// main",
    "// (kern/lib/a.wgsl already included)",
    "fn b() {}",
    "fn a() {}",
    "// (kern/lib/b.wgsl already included)",
    '// see //#include "nope.wgsl" (prose, not a directive)',
    "fn main_end() {}",
  ]);
  assert.equal(lines.length, out.length);
  // Every line names the file and line it came from (compile errors are reported with these).
  assert.deepEqual(lines, [
    { file: "kern/main.wgsl", line: 1 },
    { file: "kern/lib/b.wgsl", line: 1 },
    { file: "kern/lib/b.wgsl", line: 2 },
    { file: "kern/lib/a.wgsl", line: 2 },
    { file: "kern/main.wgsl", line: 3 },
    { file: "kern/main.wgsl", line: 4 },
    { file: "kern/main.wgsl", line: 5 },
  ]);
});

Deno.test("a kernel including itself is pasted once", () => {
  const t = fixture({ "self.wgsl": ['//#include "self.wgsl"', "fn s() {}"].join("\n") });
  assert.equal(expandKernel("self", t).code, "// (kern/self.wgsl already included)\nfn s() {}");
});

Deno.test("include paths are normalized like URLs and may use ./ and ../ inside the root", () => {
  const t = fixture({
    "k.wgsl": ['//#include "./lib/../lib/x.wgsl"', "fn k() {}"].join("\n"),
    "lib/x.wgsl": ['//#include "../lib/./y.wgsl"', "fn x() {}"].join("\n"),
    "lib/y.wgsl": "fn y() {}",
  });
  assert.equal(expandKernel("k", t).code, "fn y() {}\nfn x() {}\nfn k() {}");
});

Deno.test("an include that leaves the root in any spelling is refused", () => {
  for (
    const target of ["../x.wgsl", "/abs.wgsl", "//host/x.wgsl", "http://127.0.0.1/x.wgsl", "lib/../../x.wgsl"]
  ) {
    const t = fixture({ "e.wgsl": `//#include "${target}"`, "x.wgsl": "fn x() {}" });
    assert.throws(() => expandKernel("e", t), (e: unknown) => {
      assert.ok(e instanceof KernelIncludeError, `${target}: ${e}`);
      assert.match(e.message, /leaves kern\//);
      return true;
    });
  }
});

Deno.test("kernels/mod.ts imports exactly the .wgsl files on disk, each with its file's text", () => {
  const onDisk = listWgsl(KERNELS);
  assert.ok(onDisk.includes("softmax.wgsl") && onDisk.includes("lib/kahan.wgsl"), onDisk.join(" "));
  assert.deepEqual(Object.keys(KERNEL_FILES).sort(), onDisk, "run deno task kernels");
  for (const p of onDisk) {
    assert.equal(KERNEL_FILES[p], Deno.readTextFileSync(new URL(p, KERNELS)), p);
  }
  // The committed module is exactly what the generator writes (so regenerating changes nothing).
  assert.equal(
    Deno.readTextFileSync(new URL("mod.ts", KERNELS)),
    kernelsModule(onDisk),
    "kernels/mod.ts is stale: run deno task kernels",
  );
});

Deno.test("a missing include throws KernelIncludeError naming the including file and line", () => {
  const t = fixture({
    "top.wgsl": ["// top", "", '//#include "lib/missing.wgsl"'].join("\n"),
    "nested.wgsl": ['//#include "lib/c.wgsl"'].join("\n"),
    "lib/c.wgsl": ["fn c() {}", '//#include "gone.wgsl"'].join("\n"),
    "escape.wgsl": ['//#include "../../etc/passwd"'].join("\n"),
  });
  const is = (including: string, line: number, target: string, text: RegExp) => (e: unknown) => {
    assert.ok(e instanceof KernelIncludeError && e instanceof GpuError, `not a KernelIncludeError: ${e}`);
    assert.equal(e.including, including);
    assert.equal(e.file, including);
    assert.equal(e.line, line);
    assert.equal(e.target, target);
    assert.match(
      e.message,
      new RegExp(`^${including}, field '${target.replace(/\./g, "\\.")}': line ${line}`),
    );
    assert.match(e.message, text);
    return true;
  };
  assert.throws(
    () => expandKernel("top", t),
    is("kern/top.wgsl", 3, "lib/missing.wgsl", /could not be read/),
  );
  // The file that names the missing include, not the kernel being loaded.
  assert.throws(
    () => expandKernel("nested", t),
    is("kern/lib/c.wgsl", 2, "gone.wgsl", /could not be read/),
  );
  assert.throws(
    () => expandKernel("escape", t),
    is("kern/escape.wgsl", 1, "../../etc/passwd", /leaves kern\//),
  );
  // A missing kernel is a plain GpuError.
  assert.throws(
    () => expandKernel("absent", t),
    (e: unknown) =>
      e instanceof GpuError && !(e instanceof KernelIncludeError) && /kern\/absent\.wgsl/.test(e.message),
  );
});

Deno.test("shared fragments under kernels/lib/ cannot be loaded as kernels", () => {
  for (const name of ["lib/online_softmax", "lib/kahan", "../kernels/softmax", "Softmax"]) {
    assert.throws(() => expandKernel(name), GpuError, name);
  }
});

Deno.test("the online-softmax and Kahan code lives once and every kernel gets exactly one copy", () => {
  // Definitions only (a line starting with `fn name(`), not mentions in comments.
  const count = (s: string, fn: string) => s.match(new RegExp(`^fn ${fn}\\(`, "gm"))?.length ?? 0;
  for (const k of ["softmax", "cross_entropy", "delta_loss"]) {
    for (const [v, src] of [["", kernelSource(k)], [" (subgroups)", expandKernelSubgroups(k).code]]) {
      assert.equal(count(src, "rowStats"), 1, `${k}${v}: rowStats`);
      assert.equal(count(src, "kahanAdd"), 1, `${k}${v}: kahanAdd`);
    }
  }
  assert.equal(count(kernelSource("reduce"), "kahanAdd"), 1, "reduce: kahanAdd");
  // No kernel file defines them itself any more.
  for (const e of Deno.readDirSync(KERNELS)) {
    if (!e.isFile || !e.name.endsWith(".wgsl")) continue;
    const raw = Deno.readTextFileSync(new URL(e.name, KERNELS));
    assert.ok(!/^fn (kahanAdd|rowStats)\(/m.test(raw), `kernels/${e.name} defines a shared helper again`);
  }
});

Deno.test("every kernel in kernels/ compiles with its includes resolved; every fragment is used", async () => {
  const gpu = await getGpu();
  const used = new Set<string>();
  const names = [...Deno.readDirSync(KERNELS)].filter((e) => e.isFile && e.name.endsWith(".wgsl")).map((e) =>
    e.name.slice(0, -5)
  ).sort();
  assert.ok(names.length >= 19, `only ${names.length} kernels found`);
  for (const name of names) {
    const { code, lines } = expandKernel(name);
    assert.ok(!/^\s*\/\/#include/m.test(code), `${name}: unresolved include`);
    for (const l of lines) used.add(l.file);
    gpu.device.pushErrorScope("validation");
    gpu.device.createShaderModule({ label: name, code });
    const err = await gpu.device.popErrorScope();
    assert.equal(err, null, `kernels/${name}.wgsl does not compile: ${err?.message}`);
    // The shader-f16 variant (kernels reading weights through lib/unpack16.wgsl): compiled where the
    // device has the feature (not on llvmpipe under GL; lavapipe has it), its fragment counted as used.
    // The subgroup variant (kernels taking row statistics from lib/online_softmax.wgsl): likewise where
    // the device has `subgroups` (no Deno adapter here; tests/subgroups_browser_test.ts runs it in
    // Chromium), without the directive, as naga compiles it.
    if (lines.some((l) => l.file === "kernels/lib/online_softmax.wgsl")) {
      const sg = expandKernelSubgroups(name, PROJECT_KERNELS, false);
      for (const l of sg.lines) used.add(l.file);
      assert.ok(!sg.lines.some((l) => l.file === "kernels/lib/online_softmax.wgsl"), `${name}: not swapped`);
      if (gpu.device.features.has("subgroups" as GPUFeatureName)) {
        gpu.device.pushErrorScope("validation");
        gpu.device.createShaderModule({ label: `${name} (subgroups)`, code: sg.code });
        const errSg = await gpu.device.popErrorScope();
        assert.equal(
          errSg,
          null,
          `kernels/${name}.wgsl (subgroup variant) does not compile: ${errSg?.message}`,
        );
      }
    }
    if (!lines.some((l) => l.file === "kernels/lib/unpack16.wgsl")) continue;
    const f16 = expandKernelF16(name);
    for (const l of f16.lines) used.add(l.file);
    if (!gpu.device.features.has("shader-f16")) continue;
    gpu.device.pushErrorScope("validation");
    gpu.device.createShaderModule({ label: `${name} (shader-f16)`, code: f16.code });
    const err16 = await gpu.device.popErrorScope();
    assert.equal(
      err16,
      null,
      `kernels/${name}.wgsl (shader-f16 variant) does not compile: ${err16?.message}`,
    );
  }
  for (const e of Deno.readDirSync(new URL("lib/", KERNELS))) {
    assert.ok(used.has(`kernels/lib/${e.name}`), `kernels/lib/${e.name} is included by no kernel`);
  }
});
