/**
 * A compile-time check that two types are the same: engram's public interfaces (documented field by field,
 * as `deno doc` needs) and the zod schemas that validate the files of those types cannot drift apart.
 *
 * @module
 */

/** `true` when A and B are assignable to each other and have the same keys (optional ones too), else `false`. */
export type SameType<A, B> = [A] extends [B] ? [B] extends [A] ? SameKeys<A, B> : false : false;

/** `true` when A and B have the same keys: mutual assignability alone lets an extra optional field through. */
export type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false)
  : false;

/** `sameType<A, B>(true)` type-checks only when A and B are the same type; it does nothing at run time. */
export function sameType<A, B>(_same: SameType<A, B>): void {}
