/**
 * The editing methods, by name, and {@link applyEdit}: compute with the editor, then apply its deltas in
 * one place (src/edit/apply.ts). The map is explicit, so importing any module that edits (e.g.
 * src/evaluate/edit_metrics.ts) gets every method without relying on another module's side effects.
 */
import { InputError } from "../errors.ts";
import type { Tokenizer } from "../io/tokenizer.ts";
import type { TransformerModel } from "../model/transformer.ts";
import { type AppliedEdit, applyComputed, type EditOptions, type Editor } from "./apply.ts";
import { alphaEditEditor } from "./alphaedit.ts";
import { emmetEditor } from "./emmet.ts";
import { ftEditor, ftlEditor } from "./ft.ts";
import { knEdit } from "./kn.ts";
import { memitEditor } from "./memit.ts";
import { romeEditor } from "./rome.ts";
import type { EditRequest } from "./requests.ts";

export type { AppliedEdit, EditDeltas, EditOptions, Editor, EditResult } from "./apply.ts";

/** Every editing method engram has, by its `--method` name. */
export const EDITORS: ReadonlyMap<string, Editor> = new Map<string, Editor>([
  ["rome", romeEditor],
  ["memit", memitEditor],
  ["alphaedit", alphaEditEditor],
  ["emmet", emmetEditor],
  ["ft-l", ftlEditor],
  ["ft", ftEditor],
  ["kn", knEdit],
]);

/** Names of the editing methods, sorted. */
export function editorNames(): string[] {
  return [...EDITORS.keys()].sort();
}

/** The editor `name`, or an {@link InputError} listing the known ones. */
export function getEditor(name: string): Editor {
  const e = EDITORS.get(name);
  if (!e) {
    throw new InputError(`unknown edit method '${name}' (known: ${editorNames().join(", ")})`, {
      field: "--method",
    });
  }
  return e;
}

/**
 * Edits `model` in memory with `method`: the editor computes the deltas (leaving the model unchanged,
 * also when it fails), then they are applied; `restore()` undoes the edit exactly.
 */
export async function applyEdit(
  model: TransformerModel,
  tokenizer: Tokenizer,
  method: string,
  requests: EditRequest[],
  opts: EditOptions = {},
): Promise<AppliedEdit> {
  const editor = getEditor(method);
  if (requests.length === 0) throw new InputError("no edit requests", { field: "requests" });
  const computed = await editor(model, tokenizer, requests, opts);
  return applyComputed(model, computed, { onWarning: opts.onWarning });
}
