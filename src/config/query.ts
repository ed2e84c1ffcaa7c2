// `builder query`: recipe fields through a small template language, for scripts
// (`builder query recipe.yaml '{{.Package.Name}}-{{.Package.Version}}-r{{.Package.Epoch}}'`).
//
// Syntax: text outside `{{ … }}` is printed as is. Inside, `.A.B.C` walks the recipe from its top level:
// each segment names a key, compared without regard to case, `-` or `_` (`.Package.TargetArchitecture` is
// `package.target-architecture`), or is a list index (`.Subpackages.0.Name`). `{{ "text" }}` prints text
// (so `{{ "{{" }}` prints braces). A string prints as written in the recipe (no `${{…}}` substitution),
// a list of strings prints space-separated, anything else as JSON. `.Package.Epoch` is 0 when absent.
// A field that does not exist is an error naming the fields that do.
import type { Recipe } from './schema.ts';
import { didYouMean } from './suggest.ts';
import { UsageError } from '../errors.ts';

type Plain = string | Plain[] | { [key: string]: Plain };

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

const normal = (key: string) => key.toLowerCase().replace(/[-_]/g, '');

/** Expand `template` over `data`; throws UsageError for bad syntax and missing fields. */
export function renderQuery(template: string, data: Plain): string {
  let out = '';
  let at = 0;
  while (at < template.length) {
    const open = template.indexOf('{{', at);
    if (open < 0) {
      out += template.slice(at);
      break;
    }
    out += template.slice(at, open);
    const close = findClose(template, open + 2);
    if (close < 0) throw new UsageError(`query: "{{" at column ${open + 1} has no closing "}}"`);
    out += evaluate(template.slice(open + 2, close).trim(), data, open + 1);
    at = close + 2;
  }
  return out;
}

function findClose(template: string, from: number): number {
  let inString = false;
  for (let i = from; i < template.length - 1; i++) {
    const c = template[i];
    if (c === '\\' && inString) i++;
    else if (c === '"') inString = !inString;
    else if (!inString && c === '}' && template[i + 1] === '}') return i;
  }
  return -1;
}

function evaluate(expr: string, data: Plain, column: number): string {
  if (expr.startsWith('"')) {
    try {
      const text: unknown = JSON.parse(expr);
      if (typeof text === 'string') return text;
    } catch {
      // reported below
    }
    throw new UsageError(`query: invalid string ${expr} at column ${column}`);
  }
  if (!/^(\.[A-Za-z0-9_-]+)+$|^\.$/.test(expr)) {
    throw new UsageError(`query: expected a field path like .Package.Name at column ${column}, found "${expr}"`);
  }
  let node = data;
  const walked: string[] = [];
  for (const segment of expr === '.' ? [] : expr.slice(1).split('.')) {
    if (Array.isArray(node)) {
      const index = /^\d+$/.test(segment) ? Number(segment) : -1;
      const item = node[index];
      if (item === undefined) {
        throw new UsageError(`query: .${[...walked, segment].join('.')}: ${walked.length ? `.${walked.join('.')}` : 'the recipe'} is a list of ${node.length}; use an index from 0 to ${node.length - 1}`);
      }
      node = item;
    } else if (typeof node === 'object') {
      const key = Object.keys(node).find((k) => normal(k) === normal(segment));
      if (key === undefined) {
        const keys = Object.keys(node);
        const hint = didYouMean(segment, keys);
        throw new UsageError(
          `query: .${[...walked, segment].join('.')}: no such field${hint}${hint ? '' : keys.length ? ` (fields here: ${keys.join(', ')})` : ' (nothing is set here)'}`,
        );
      }
      node = node[key]!;
    } else {
      throw new UsageError(`query: .${[...walked, segment].join('.')}: .${walked.join('.')} is a string, not a mapping`);
    }
    walked.push(segment);
  }
  return render(node);
}

function render(node: Plain): string {
  if (typeof node === 'string') return node;
  if (Array.isArray(node) && node.every((n) => typeof n === 'string')) return node.join(' ');
  return JSON.stringify(node);
}
