// `${{ name }}` substitution. Unknown names are collected as problems at the place they were written.
import type { Problems, Sourced } from '../config/decode.ts';
import { ConditionSyntaxError, evaluateExpression } from './condition.ts';

const PATTERN = /\$\{\{\s*([^{}]*?)\s*\}\}/g;
const NAME = /^[A-Za-z0-9._-]+$/;

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
    const v = NAME.test(inner)
      ? resolve(inner, scope, text, path, problems, [...expanding, name])
      : expression(inner, whole, (n) => resolve(n, scope, text, path, problems, [...expanding, name]), text, path, problems);
    if (v === undefined) failed = true;
    return v ?? whole;
  });
  return failed ? undefined : out;
}

/** A `${{ … }}` holding an expression rather than a name; undefined (with a problem) when it is malformed. */
function expression(
  inner: string,
  whole: string,
  lookup: (name: string) => string | undefined,
  text: Sourced,
  path: string,
  problems: Problems,
): string | undefined {
  let failed = false;
  try {
    const v = evaluateExpression(inner, (n) => {
      const found = lookup(n);
      if (found === undefined) failed = true;
      return found;
    });
    return failed ? undefined : v;
  } catch (err) {
    if (!(err instanceof ConditionSyntaxError)) throw err;
    problems.add(text.loc, path, `invalid expression "${whole}": ${err.message}`);
    return undefined;
  }
}

function hint(name: string): string {
  if (name === 'range.key' || name === 'range.value') return ' (only defined in a subpackage with "range")';
  if (name.startsWith('inputs.')) return ' (not an input of this pipeline)';
  if (name === 'subpkg.name' || name === 'targets.subpkgdir') return ' (only defined in a subpackage)';
  return '';
}

/**
 * Replace every `${{ name }}` and `${{ expression }}` in `text`; unknown names are reported and left as
 * written, except names `keep` accepts, which are left as written silently (melange leaves an undefined
 * `${{inputs.X}}` in a step's name).
 */
export function substitute(text: Sourced, scope: Scope, path: string, problems: Problems, keep?: (name: string) => boolean): string {
  if (!text.value.includes('${{')) return text.value;
  return text.value.replace(PATTERN, (whole, inner: string) => {
    if (NAME.test(inner)) {
      if (keep && scope.get(inner) === undefined && keep(inner)) return whole;
      return resolveName(inner, scope, text, path, problems) ?? whole;
    }
    return expression(inner, whole, (n) => resolveName(n, scope, text, path, problems), text, path, problems) ?? whole;
  });
}

export function hasSubstitution(text: string): boolean {
  PATTERN.lastIndex = 0;
  return PATTERN.test(text);
}
