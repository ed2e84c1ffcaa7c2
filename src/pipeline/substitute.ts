// `${{ name }}` substitution. Unknown names are collected as problems at the place they were written.
import type { Problems, Sourced } from '../config/decode.ts';

const PATTERN = /\$\{\{\s*([^{}]*?)\s*\}\}/g;

/** Names visible to a substitution; nested scopes layer over their parent (see `layer`). */
export interface Scope {
  get(name: string): string | undefined;
}

/** A scope that adds or overrides names over a parent without copying it. */
export function layer(parent: Scope, own: ReadonlyMap<string, string>): Scope {
  return { get: (name) => own.get(name) ?? parent.get(name) };
}

// Recipe variables are templates themselves (`vars: {dir: ${{targets.contextdir}}/usr}`) and are expanded
// where they are used, so a variable can refer to names that only exist in a package's or a pipeline's
// context, as in melange.
const TEMPLATE_PREFIX = 'vars.';
const MAX_DEPTH = 16;

/**
 * The value of one name, with variables expanded in `scope`; undefined (and a problem added) when the name,
 * or a name inside a variable, is not defined.
 */
export function resolveName(name: string, scope: Scope, text: Sourced, path: string, problems: Problems): string | undefined {
  return resolve(name, scope, text, path, problems, []);
}

function resolve(name: string, scope: Scope, text: Sourced, path: string, problems: Problems, expanding: string[]): string | undefined {
  const value = scope.get(name);
  if (value === undefined) {
    const within = expanding.length > 0 ? ` (in ${expanding[expanding.length - 1]})` : '';
    problems.add(text.loc, path, `undefined substitution "\${{${name}}}"${within}${hint(name)}`);
    return undefined;
  }
  if (!name.startsWith(TEMPLATE_PREFIX) || !value.includes('${{')) return value;
  if (expanding.includes(name) || expanding.length >= MAX_DEPTH) {
    problems.add(text.loc, path, `"\${{${name}}}" refers to itself (${[...expanding, name].join(' → ')})`);
    return undefined;
  }
  let failed = false;
  const out = value.replace(PATTERN, (whole, inner: string) => {
    const v = resolve(inner, scope, text, path, problems, [...expanding, name]);
    if (v === undefined) failed = true;
    return v ?? whole;
  });
  return failed ? undefined : out;
}

function hint(name: string): string {
  if (name === 'range.key' || name === 'range.value') return ' (only defined in a subpackage with "range")';
  if (name.startsWith('inputs.')) return ' (not an input of this pipeline)';
  if (name === 'subpkg.name' || name === 'targets.subpkgdir') return ' (only defined in a subpackage)';
  return '';
}

/** Replace every `${{ name }}` in `text`; unknown names are reported and left as written. */
export function substitute(text: Sourced, scope: Scope, path: string, problems: Problems): string {
  if (!text.value.includes('${{')) return text.value;
  return text.value.replace(PATTERN, (whole, name: string) => resolveName(name, scope, text, path, problems) ?? whole);
}

export function hasSubstitution(text: string): boolean {
  PATTERN.lastIndex = 0;
  return PATTERN.test(text);
}
