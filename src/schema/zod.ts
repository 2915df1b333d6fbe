/**
 * The one import of zod (npm), pinned here so that every schema of engram uses the same version and a
 * script outside the repository resolves it without an import map.
 *
 * @module
 */
export { z } from "npm:zod@4.6.7";
