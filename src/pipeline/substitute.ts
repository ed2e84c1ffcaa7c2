// `${{ name }}` substitution. Unknown names are collected as problems at the place they were written.
import type { Problems, Sourced } from '../config/decode.ts';

const PATTERN = /\$\{\{\s*([^{}]*?)\s*\}\}/g;

export type Scope = ReadonlyMap<string, string>;

/** Replace every `${{ name }}` in `text`; unknown names are reported and left as written. */
export function substitute(text: Sourced, scope: Scope, path: string, problems: Problems): string {
  return text.value.replace(PATTERN, (whole, name: string) => {
    const value = scope.get(name);
    if (value !== undefined) return value;
    problems.add(text.loc, path, `undefined substitution "\${{${name}}}"`);
    return whole;
  });
}

export function hasSubstitution(text: string): boolean {
  PATTERN.lastIndex = 0;
  return PATTERN.test(text);
}
