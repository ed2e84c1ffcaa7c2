// `--env-file FILE`: variables preloaded into the build environment, in the dotenv format melange reads
// (godotenv): `NAME=value`, `export NAME=value`, `NAME: value`, `#` comments, single quotes taken literally,
// double quotes with \n \t \\ \" escapes, `$NAME` / `${NAME}` expanded from earlier lines (then the host
// environment) in unquoted and double-quoted values. Several files are read in order; a later one wins.
import { readFlagFile } from './options.ts';
import { BuilderError } from '../errors.ts';

export class EnvFileError extends BuilderError {
  override name = 'EnvFileError';
}

const KEY = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/** Reads every file in order into one map. */
export async function readEnvFiles(files: readonly string[], hostEnv: NodeJS.ProcessEnv = process.env): Promise<Record<string, string>> {
  const vars: Record<string, string> = {};
  for (const file of files) {
    const text = await readFlagFile('--env-file', file, (m) => new EnvFileError(m));
    Object.assign(vars, parseEnvFile(text, file, { ...hostEnv, ...vars }));
  }
  return vars;
}

/** Parses one file's text; `file` only names it in errors. */
export function parseEnvFile(text: string, file: string, outer: NodeJS.ProcessEnv = {}): Record<string, string> {
  const vars: Record<string, string> = {};
  const lookup = (name: string) => vars[name] ?? outer[name] ?? '';
  text.split(/\r?\n/).forEach((raw, i) => {
    const fail = (why: string): never => {
      throw new EnvFileError(`${file}:${i + 1}: ${why}`, { details: [raw] });
    };
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (/^export\s/.test(line)) line = line.slice('export'.length).trimStart();
    const m = /^([^=:\s]+)\s*[=:]\s?(.*)$/.exec(line);
    if (!m) return fail(`expected NAME=value`);
    const [, key, rest] = m as unknown as [string, string, string];
    if (!KEY.test(key)) fail(`"${key}" is not a valid variable name`);
    vars[key] = parseValue(rest.trim(), lookup, fail);
  });
  return vars;
}

function parseValue(v: string, lookup: (name: string) => string, fail: (why: string) => never): string {
  const quote = v[0];
  if (quote === "'" || quote === '"') {
    const end = closingQuote(v, quote);
    if (end < 0) fail(`unterminated ${quote === '"' ? 'double' : 'single'}-quoted value`);
    const after = v.slice(end + 1).trim();
    if (after !== '' && !after.startsWith('#')) fail(`unexpected text after the closing quote: ${after}`);
    const inner = v.slice(1, end);
    if (quote === "'") return inner;
    return expand(inner.replace(/\\([nrt"\\$])/g, (_, c: string) => ({ n: '\n', r: '\r', t: '\t' })[c] ?? (c === '$' ? '\\$' : c)), lookup);
  }
  // Unquoted: an inline comment starts at a ` #`.
  const hash = v.search(/\s#/);
  return expand((hash >= 0 ? v.slice(0, hash) : v).trim(), lookup);
}

function closingQuote(v: string, quote: string): number {
  for (let i = 1; i < v.length; i++) {
    if (v[i] === '\\' && quote === '"') i++;
    else if (v[i] === quote) return i;
  }
  return -1;
}

/** `$NAME` and `${NAME}`; `\$` stays a literal dollar. */
function expand(v: string, lookup: (name: string) => string): string {
  return v.replace(/\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (all, braced?: string, bare?: string) =>
    all === '\\$' ? '$' : lookup((braced ?? bare)!),
  );
}
