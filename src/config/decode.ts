// Strict, located decoding of YAML nodes into plain typed data. Decoders collect every problem of a file
// instead of stopping at the first, so a user sees them all at once.
import type { ConfigProblem, SourceLocation } from '../errors.ts';
import { didYouMean } from './suggest.ts';
import { escapeControls, type YMap, type YNode } from './yaml-source.ts';

export class Problems {
  readonly list: ConfigProblem[] = [];
  add(location: SourceLocation, path: string, message: string): void {
    this.list.push({ location, path: escapeControls(path), message: escapeControls(message) });
  }
}

export type Decoder<T> = (node: YNode, path: string, problems: Problems) => T | undefined;

/** A string with the place it was written, for errors found after decoding (substitutions, `if`). */
export interface Sourced {
  value: string;
  loc: SourceLocation;
}

function describe(node: YNode): string {
  return node.kind === 'scalar' ? 'a string' : node.kind === 'map' ? 'a mapping' : 'a list';
}

export const str: Decoder<string> = (node, path, problems) => {
  if (node.kind !== 'scalar') {
    problems.add(node.loc, path, `expected a string, found ${describe(node)}`);
    return undefined;
  }
  return node.value ?? '';
};

export const sourced: Decoder<Sourced> = (node, path, problems) => {
  const value = str(node, path, problems);
  return value === undefined ? undefined : { value, loc: node.loc };
};

export const int: Decoder<number> = (node, path, problems) => {
  const value = str(node, path, problems);
  if (value === undefined) return undefined;
  if (!/^[+-]?\d+$/.test(value.trim())) {
    problems.add(node.loc, path, `expected an integer, found "${value}"`);
    return undefined;
  }
  return Number.parseInt(value, 10);
};

const DURATION_UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, 'µs': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/**
 * A duration in seconds: Go's duration syntax (`90m`, `1h30m`, `2.5h`), as melange's `time.Duration` fields
 * take it, or a bare integer, read as seconds.
 */
export const duration: Decoder<number> = (node, path, problems) => {
  const value = str(node, path, problems);
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number.parseInt(text, 10);
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let seconds = 0;
  let at = 0;
  while (at < text.length) {
    part.lastIndex = at;
    const m = part.exec(text);
    if (!m) break;
    seconds += Number.parseFloat(m[1]!) * DURATION_UNITS[m[2]!]!;
    at = part.lastIndex;
  }
  if (text === '' || at !== text.length) {
    problems.add(node.loc, path, `expected a duration such as "90m" or "2h", or a number of seconds, found "${value}"`);
    return undefined;
  }
  return seconds;
};

const TRUE = new Set(['true', 'True', 'TRUE', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'False', 'FALSE', 'no', 'off', '0', '']);
export const bool: Decoder<boolean> = (node, path, problems) => {
  const value = str(node, path, problems);
  if (value === undefined) return undefined;
  if (TRUE.has(value)) return true;
  if (FALSE.has(value)) return false;
  problems.add(node.loc, path, `expected true or false, found "${value}"`);
  return undefined;
};

export function list<T>(item: Decoder<T>): Decoder<T[]> {
  return (node, path, problems) => {
    if (node.kind === 'scalar' && node.value === null) return [];
    if (node.kind !== 'seq') {
      problems.add(node.loc, path, `expected a list, found ${describe(node)}`);
      return undefined;
    }
    const out: T[] = [];
    node.items.forEach((child, i) => {
      const v = item(child, `${path}[${i}]`, problems);
      if (v !== undefined) out.push(v);
    });
    return out;
  };
}

function asMap(node: YNode, path: string, problems: Problems): YMap | undefined {
  if (node.kind === 'scalar' && node.value === null) return { kind: 'map', entries: [], loc: node.loc };
  if (node.kind !== 'map') {
    problems.add(node.loc, path, `expected a mapping, found ${describe(node)}`);
    return undefined;
  }
  return node;
}

/** A mapping with free-form keys (vars, environment, with, data items). Keeps source order. */
export function dict<T>(value: Decoder<T>): Decoder<Record<string, T>> {
  return (node, path, problems) => {
    const map = asMap(node, path, problems);
    if (!map) return undefined;
    const out: Record<string, T> = {};
    for (const e of map.entries) {
      const v = value(e.value, path ? `${path}.${e.key}` : e.key, problems);
      if (v !== undefined) out[e.key] = v;
    }
    return out;
  };
}

/** Free-form mapping whose entries keep their locations (for keys that are validated later, like `with`). */
export const sourcedDict: Decoder<Record<string, Sourced>> = (node, path, problems) => {
  const map = asMap(node, path, problems);
  if (!map) return undefined;
  const out: Record<string, Sourced> = {};
  for (const e of map.entries) {
    const v = sourced(e.value, `${path}.${e.key}`, problems);
    if (v !== undefined) out[e.key] = { value: v.value, loc: e.keyLoc };
  }
  return out;
};

export type Shape = Record<string, Decoder<unknown>>;
export type Decoded<S extends Shape> = { [K in keyof S]?: S[K] extends Decoder<infer T> ? T : never } & {
  /** Where the mapping itself was written. */
  loc: SourceLocation;
};

export interface ObjectOptions<S> {
  required?: (keyof S & string)[];
  /** Pipeline definition files are read leniently: unknown keys are ignored. */
  lenient?: boolean;
}

/** A mapping with a fixed set of keys; unknown keys are errors with the nearest valid key suggested. */
export function obj<S extends Shape>(shape: S, options: ObjectOptions<S> = {}): Decoder<Decoded<S>> {
  const keys = Object.keys(shape);
  return (node, path, problems) => {
    const map = asMap(node, path, problems);
    if (!map) return undefined;
    const out: Record<string, unknown> = { loc: map.loc };
    for (const e of map.entries) {
      const childPath = path ? `${path}.${e.key}` : e.key;
      const decoder = Object.hasOwn(shape, e.key) ? shape[e.key] : undefined;
      if (!decoder) {
        if (!options.lenient) problems.add(e.keyLoc, childPath, `unknown key "${e.key}"${didYouMean(e.key, keys)}`);
        continue;
      }
      const v = decoder(e.value, childPath, problems);
      if (v !== undefined) out[e.key] = v;
    }
    for (const k of options.required ?? []) {
      const present = map.entries.find((e) => e.key === k);
      if (!present || (present.value.kind === 'scalar' && (present.value.value ?? '') === '')) {
        problems.add(present?.keyLoc ?? map.loc, path ? `${path}.${k}` : k, `"${k}" is required`);
      }
    }
    return out as Decoded<S>;
  };
}

/** Decoder for a recursive type, resolved on first use. */
export function lazy<T>(get: () => Decoder<T>): Decoder<T> {
  return (node, path, problems) => get()(node, path, problems);
}
