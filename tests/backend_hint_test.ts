import assert from "node:assert/strict";
import { backendHint } from "../src/gpu/device.ts";

Deno.test("no-adapter hint: a DENO_WEBGPU_BACKEND naming no backend is pointed out; a good one is not", () => {
  for (
    const ok of [undefined, "vulkan", "gl", "GL", "vulkan,gl", " vulkan , gl ", "opengl", "metal", "dx12"]
  ) {
    assert.equal(backendHint(ok), "", String(ok));
  }
  for (const bad of ["", "primary", "bogus", "vulkan,", "vulkan,bogus"]) {
    assert.match(backendHint(bad), new RegExp(`is set to '${bad}', which names no backend`), bad);
  }
});
