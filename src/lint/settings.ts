// Which linters fail a build. Every linter runs; its severity decides. From weakest to strongest say:
// the linter's default, then the recipe's `checks.disabled` (downgraded to a warning), then the command
// line's `--lint-warn` (warning) and `--lint-require` (error).
import { BuilderError, UsageError } from '../errors.ts';
import { findLinter, LINTER_ALIASES, LINTER_NAMES, LINTERS, type Severity, UNIMPLEMENTED_LINTERS } from './linters.ts';

export interface LintSettingsInput {
  /** The recipe's `package.checks.disabled` (or the subpackage's). */
  disabled?: readonly string[];
  /** The recipe's `checks.enabled`: every linter already runs, so these are only checked for typos. */
  enabled?: readonly string[];
  /** `--lint-require` */
  require?: readonly string[];
  /** `--lint-warn` */
  warn?: readonly string[];
}

export interface LintSettings {
  /** Severity of every linter, by canonical name. */
  severities: ReadonlyMap<string, Severity>;
}

/** A linter name nobody knows: names the place it came from and lists the valid ones. */
export class UnknownLinterError extends BuilderError {
  override name = 'UnknownLinterError';
  readonly unknown: string[];
  readonly where: string;
  constructor(unknown: string[], where: string) {
    super(`${where}: unknown linter${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"${n}"`).join(', ')} (valid: ${validLinterNames().join(', ')})`);
    this.unknown = unknown;
    this.where = where;
  }
}

/** Unknown linter names among `names`: for callers that report them with their own location. */
export function unknownLinterNames(names: readonly string[]): string[] {
  return names.filter((n) => findLinter(n) === undefined && !UNIMPLEMENTED_LINTERS.includes(n));
}

/** Names among `names` that melange knows but builder does not implement (they are skipped). */
export function unimplementedLinterNames(names: readonly string[]): string[] {
  return names.filter((n) => UNIMPLEMENTED_LINTERS.includes(n));
}

/** Every name `checks` and the lint flags accept: builder's linters, their aliases and melange's others. */
export function validLinterNames(): string[] {
  return [...LINTER_NAMES, ...Object.keys(LINTER_ALIASES), ...UNIMPLEMENTED_LINTERS].sort();
}

function canonical(names: readonly string[] | undefined, where: string): string[] {
  const list = names ?? [];
  const unknown = unknownLinterNames(list);
  if (unknown.length > 0) {
    // A flag is a usage error (exit 2); a recipe key is an ordinary error.
    const err = new UnknownLinterError(unknown, where);
    throw where.startsWith('--') ? new UsageError(err.message) : err;
  }
  return list.filter((n) => !UNIMPLEMENTED_LINTERS.includes(n)).map((n) => findLinter(n)?.name ?? n);
}

export function lintSettings(input: LintSettingsInput = {}): LintSettings {
  const disabled = canonical(input.disabled, 'checks.disabled');
  canonical(input.enabled, 'checks.enabled');
  const require = canonical(input.require, '--lint-require');
  const warn = canonical(input.warn, '--lint-warn');
  const both = require.filter((n) => warn.includes(n));
  if (both.length > 0) throw new UsageError(`--lint-require and --lint-warn both name ${both.map((n) => `"${n}"`).join(', ')}`);
  const severities = new Map<string, Severity>();
  for (const l of LINTERS) severities.set(l.name, l.defaultSeverity);
  for (const n of disabled) severities.set(n, 'warning');
  for (const n of warn) severities.set(n, 'warning');
  for (const n of require) severities.set(n, 'error');
  return { severities };
}

/** Commander option parser for repeatable, comma-separated linter lists (`--lint-warn strip,opt`). */
export function collectLinterList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter((s) => s !== '')];
}
