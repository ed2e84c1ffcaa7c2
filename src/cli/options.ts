// Helpers for commander options shared by several commands, and the command-line forms melange (Go's
// pflag) accepts and commander does not: `--flag=true|false` for boolean flags, comma-separated list values,
// Go durations (`90s`, `1h30m`).
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';

/** The text of a file a flag names; a missing or unreadable one is an error naming the flag and the file. */
export async function readFlagFile(flag: string, file: string, fail: (message: string) => Error = (m) => new UsageError(m)): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (code ?? String(err));
    throw fail(`${flag}: ${file}: ${why}`);
  }
}

/** Accumulates a repeatable option: `--x a --x b` → ['a', 'b']. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/**
 * Rewrites `--name=BOOL` of `cmd`'s boolean options into `--name` / `--no-name`, as pflag reads them. A
 * boolean never takes the next word as its value (`--cleanup recipe.yaml` keeps the recipe).
 */
export function normalizeBooleanFlags(cmd: Command, args: readonly string[]): string[] {
  const booleans = new Set<string>();
  for (const opt of cmd.options) {
    if (opt.required || opt.optional || !opt.long) continue;
    booleans.add(opt.long.replace(/^--(no-)?/, ''));
  }
  const out: string[] = [];
  for (const [i, arg] of args.entries()) {
    if (arg === '--') return [...out, ...args.slice(i)];
    const m = /^--([^=]+)=(.*)$/.exec(arg);
    if (!m || !booleans.has(m[1]!)) {
      out.push(arg);
      continue;
    }
    const [, name, value] = m as unknown as [string, string, string];
    if (TRUE.has(value)) out.push(`--${name}`);
    else if (FALSE.has(value)) out.push(`--no-${name}`);
    else throw new UsageError(`--${name}: "${value}" is not a boolean (true or false)`);
  }
  return out;
}

/** Accumulates a repeatable list option whose values may also be comma-separated: `-r a,b -r c` → a, b, c. */
export function collectList(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim()).filter((v) => v !== '')];
}

const UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/** A Go duration (`30s`, `1h30m`, `1.5h`) or plain seconds, in seconds. */
export function parseDuration(flag: string, text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    end = re.lastIndex;
  }
  if (text === '' || end !== text.length) throw new UsageError(`${flag}: "${text}" is not a duration (e.g. 90s, 45m, 1h30m)`);
  return total;
}
