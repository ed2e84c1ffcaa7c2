// `builder query`: recipe fields through Go's text/template language, as `melange query` runs it
// (`builder query recipe.yaml '{{ .Package.Name }}-{{ .Package.Version }}-r{{ .Package.Epoch }}'`).
//
// Supported: text and `{{ pipeline }}` actions with `{{-`/`-}}` trimming and `{{/* comments */}}`; fields
// `.A.B` (a segment matches a key without regard to case, `-` or `_`, so `.Package.TargetArchitecture` is
// `package.target-architecture`; a number indexes a list, `.Subpackages.0.Name`, builder's extension);
// variables `$`, `$x := …`, `$x = …`, `$i, $v := range …`; `if`/`else if`/`else`, `range`/`else`, `with`/`else`,
// `end`; pipes `|`, parentheses `(…).Field`; string, raw string, number and `true`/`false`/`nil` literals;
// the functions `len index slice printf print println eq ne lt le gt ge and or not urlquery`.
//
// Values print as Go prints them: lists as `[a b]`, mappings as `map[k:v …]` with sorted keys (melange's
// recipe structs print as `{…}`; builder has no struct types, so a mapping always prints as a map). Scalars
// print as written in the recipe (no `${{…}}` substitution). `.Package.Epoch` is 0 when absent. Printing a
// field the recipe does not set is an error naming the fields that are set (melange prints the zero value);
// `if`, `with`, `range`, `len`, `and`, `or`, `not` and the comparisons take it as empty. As for truth, the
// strings "", "0" and "false" are false, since recipe scalars stay text.
import type { Recipe } from './schema.ts';
import { renderTemplate, type TemplateData } from './template.ts';

type Plain = TemplateData;

/** The recipe as plain data: locations dropped, every scalar a string. */
export function recipeData(recipe: Recipe): Plain {
  const data = plain(recipe) as Record<string, Plain>;
  const pkg = data.package as Record<string, Plain> | undefined;
  if (pkg && pkg.epoch === undefined) pkg.epoch = '0';
  return data;
}

function plain(value: unknown): Plain {
  if (Array.isArray(value)) return value.map(plain);
  if (value === null || value === undefined) return '';
  if (typeof value !== 'object') return String(value);
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  // A Sourced string: { value, loc }.
  if (keys.length === 2 && 'value' in obj && 'loc' in obj) return plain(obj.value);
  const out: Record<string, Plain> = {};
  for (const k of keys) if (k !== 'loc' && obj[k] !== undefined) out[k] = plain(obj[k]);
  return out;
}

/** Expand `template` over the recipe `data`; throws UsageError for bad syntax and missing fields. */
export function renderQuery(template: string, data: Plain): string {
  return renderTemplate(template, data);
}
