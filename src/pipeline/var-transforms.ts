// `var-transforms`: derived variables, each `from` (substituted) rewritten by a regular expression written
// for Go's regexp package, stored as `vars.<to>`.
import type { Problems } from '../config/decode.ts';
import type { Recipe } from '../config/schema.ts';
import { substitute } from './substitute.ts';

/** Applies the recipe's var-transforms in order, each seeing the variables the earlier ones set. */
export function applyVarTransforms(transforms: NonNullable<Recipe['var-transforms']>, scope: Map<string, string>, problems: Problems): void {
  transforms.forEach((t, i) => {
    const path = `var-transforms[${i}]`;
    const from = substitute(t.from!, scope, `${path}.from`, problems);
    const re = goRegExp(t.match!.value);
    if (typeof re === 'string') {
      problems.add(t.match!.loc, `${path}.match`, `invalid regular expression "${t.match!.value}": ${re}`);
      return;
    }
    scope.set(`vars.${t.to}`, from.replace(re, (...args: unknown[]) => expandGoTemplate(t.replace ?? '', args)));
  });
}


/** A JavaScript RegExp for a Go (RE2) pattern, or the reason it is not valid. */
function goRegExp(pattern: string): RegExp | string {
  let flags = 'g';
  let source = pattern;
  const lead = /^\(\?([imsU]+)\)/.exec(source);
  if (lead) {
    if (lead[1]!.includes('U')) return 'the U (ungreedy) flag is not supported';
    for (const f of lead[1]!) if (f !== 'U' && !flags.includes(f)) flags += f;
    source = source.slice(lead[0].length);
  }
  source = source.replace(/\(\?P</g, '(?<');
  try {
    return new RegExp(source, flags);
  } catch (err) {
    return (err as Error).message.replace(/^Invalid regular expression: /, '');
  }
}

/**
 * Go's Regexp.Expand: `$1`, `${1}`, `$name`, `${name}` and `$$`. A name is the longest run of letters, digits
 * and underscores, so `$1x` is the (missing, hence empty) group named "1x", exactly as in Go.
 */
function expandGoTemplate(template: string, args: unknown[]): string {
  // replace() passes (match, g1..gn, offset, input[, groups])
  const last = args[args.length - 1];
  const hasGroups = typeof last === 'object' && last !== null;
  const groups = (hasGroups ? last : undefined) as Record<string, string | undefined> | undefined;
  const captures = args.slice(0, hasGroups ? -3 : -2) as (string | undefined)[];
  return template.replace(/\$(\$|\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]+))/g, (whole, _all, braced?: string, bare?: string) => {
    if (whole === '$$') return '$';
    const name = braced ?? bare ?? '';
    if (name === '') return whole;
    if (/^\d+$/.test(name)) return captures[Number(name)] ?? '';
    return groups?.[name] ?? '';
  });
}
