/**
 * Output paths never touch inputs: `--out`, `--log` (any path a command writes) must not be an input of
 * the command, a folder that contains an input, or a folder inside an input, whether or not `--overwrite`
 * is given. Paths are compared after resolving symbolic links (of the longest existing prefix: an output
 * usually does not exist yet), so a link to the input folder is caught too.
 */
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { InputError } from "../errors.ts";

/** A path and the flag (or file field) that named it. */
export interface NamedPath {
  path: string;
  flag: string;
}

/**
 * The absolute real path of `p`: symbolic links of its existing part resolved, the missing rest (an
 * output yet to be written) appended as written.
 */
export async function realPathOf(p: string): Promise<string> {
  // Not path.resolve: it would fold "link/.." lexically, where the system follows the link first.
  let head = isAbsolute(p) ? p : `${Deno.cwd()}/${p}`;
  const rest: string[] = [];
  for (;;) {
    try {
      const real = await Deno.realPath(head);
      return rest.length ? join(real, ...rest.reverse()) : real;
    } catch {
      const up = dirname(head);
      if (up === head) return resolve(p);
      rest.push(basename(head));
      head = up;
    }
  }
}

/** How `a` relates to `b`: "same", "contains" (b is inside a), "inside" (a is inside b), or undefined. */
export function pathRelation(a: string, b: string): "same" | "contains" | "inside" | undefined {
  if (a === b) return "same";
  const r = relative(a, b);
  if (r !== "" && !r.startsWith("..") && !r.startsWith(sep) && !/^[A-Za-z]:/.test(r)) return "contains";
  const q = relative(b, a);
  if (q !== "" && !q.startsWith("..") && !q.startsWith(sep) && !/^[A-Za-z]:/.test(q)) return "inside";
  return undefined;
}

/**
 * Refuses outputs that would write over, into or around an input, and outputs that overlap each other:
 * throws {@link InputError} naming the output's flag and the input's flag. `inputs` entries with an empty
 * path are skipped.
 */
export async function checkOutputs(outputs: NamedPath[], inputs: NamedPath[]): Promise<void> {
  const ins = await Promise.all(
    inputs.filter((i) => i.path !== "").map(async (i) => ({ ...i, real: await realPathOf(i.path) })),
  );
  const outs = await Promise.all(outputs.map(async (o) => ({ ...o, real: await realPathOf(o.path) })));
  for (const o of outs) {
    for (const i of ins) {
      const rel = pathRelation(o.real, i.real);
      if (!rel) continue;
      const what = rel === "same"
        ? `is the input ${i.flag} (${i.path})`
        : rel === "contains"
        ? `is a folder that contains the input ${i.flag} (${i.path})`
        : `is inside the input ${i.flag} (${i.path})`;
      throw new InputError(
        `${o.flag} ${o.path} ${what}; engram never writes over its inputs: choose another path`,
        {
          field: o.flag,
        },
      );
    }
  }
  for (let a = 0; a < outs.length; a++) {
    for (let b = a + 1; b < outs.length; b++) {
      if (pathRelation(outs[a].real, outs[b].real)) {
        throw new InputError(
          `${outs[b].flag} ${outs[b].path} overlaps ${outs[a].flag} ${outs[a].path}; give two separate paths`,
          { field: outs[b].flag },
        );
      }
    }
  }
}
