/**
 * Registers every editing method: importing this module fills the registry of ./apply.ts. Each editor
 * module calls `registerEditor` when imported; add one import line here per new method.
 */
import "./rome.ts";
import "./memit.ts";
import "./ft.ts";
import "./kn.ts";

export { applyEdit, editorNames, getEditor, registerEditor } from "./apply.ts";
