// Linting one package: a built .apk (its metadata read from the archive) or a package directory.
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ElfInfo } from '../elf/reader.ts';
import { BuilderError, errorMessage } from '../errors.ts';
import { type PackageTree, readTreeFromApk, readTreeFromDir } from '../apk/sca/tree.ts';
import { type LintFinding, LINTERS, readElfFiles, type Severity } from './linters.ts';
import { lintSettings, type LintSettings } from './settings.ts';

export interface LintReportFinding extends LintFinding {
  linter: string;
  severity: Severity;
}

export interface LintReport {
  package: string;
  /** `<version>-r<epoch>`, when known (always for an .apk). */
  version: string | null;
  arch: string;
  /** The .apk linted, or null for a directory. */
  file: string | null;
  /** In linter order, then by path. */
  findings: LintReportFinding[];
  /** Files that could not be examined (corrupt ELF headers and the like). */
  notes: string[];
  errors: number;
  warnings: number;
}

export interface LintOptions {
  settings?: LintSettings;
  /** Required for a directory; an .apk's `.PKGINFO` wins over these. */
  packageName?: string;
  version?: string;
  arch?: string;
  /** Where an .apk's contents are unpacked while linting (default: the system temp dir). */
  tempParent?: string;
  /** The path to report for an .apk (e.g. its final name while it still has a temp name). */
  reportAs?: string;
}

/** Lints a built .apk or a package directory. */
export async function lintPackage(target: string, options: LintOptions = {}): Promise<LintReport> {
  let st;
  try {
    st = await stat(target);
  } catch (err) {
    throw new BuilderError(`cannot read ${target}: ${errorMessage(err)}`, { cause: err });
  }
  if (st.isDirectory()) {
    if (options.packageName === undefined || options.arch === undefined) {
      throw new BuilderError(`linting the directory ${target} needs the package name and architecture`);
    }
    const tree = await readTreeFromDir(target);
    return lintTree(tree, { packageName: options.packageName, version: options.version ?? null, arch: options.arch, file: null, settings: options.settings });
  }
  const tree = await readTreeFromApk(target, { tempParent: options.tempParent });
  try {
    const info = tree.head.info;
    return await lintTree(tree, { packageName: info.pkgname, version: info.pkgver, arch: info.arch, file: options.reportAs ?? target, settings: options.settings });
  } finally {
    await tree.dispose();
  }
}

export async function lintTree(
  tree: PackageTree,
  meta: { packageName: string; version: string | null; arch: string; file: string | null; settings?: LintSettings },
): Promise<LintReport> {
  const settings = meta.settings ?? lintSettings();
  let elfRead: Promise<{ elves: Map<string, ElfInfo>; problems: string[] }> | undefined;
  const elf = (): Promise<{ elves: Map<string, ElfInfo>; problems: string[] }> => (elfRead ??= readElfFiles(tree));
  const ctx = {
    tree,
    packageName: meta.packageName,
    arch: meta.arch,
    elfFiles: async () => (await elf()).elves,
  };
  const findings: LintReportFinding[] = [];
  for (const linter of LINTERS) {
    const severity = settings.severities.get(linter.name) ?? linter.defaultSeverity;
    const found = await linter.check(ctx);
    found.sort((a, b) => ((a.path ?? '') < (b.path ?? '') ? -1 : (a.path ?? '') > (b.path ?? '') ? 1 : 0));
    for (const f of found) findings.push({ linter: linter.name, severity, ...f });
  }
  const notes = [...tree.warnings, ...(elfRead ? (await elfRead).problems : [])];
  return {
    package: meta.packageName,
    version: meta.version,
    arch: meta.arch,
    file: meta.file,
    findings,
    notes,
    errors: findings.filter((f) => f.severity === 'error').length,
    warnings: findings.filter((f) => f.severity === 'warning').length,
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function reportTitle(r: LintReport): string {
  return `${r.file === null ? r.package : basename(r.file)}${r.version === null || r.file !== null ? '' : ` ${r.version}`}`;
}

/**
 * Human-readable lines: a summary line, then the findings (at most `maxPerLinter` per linter, the rest
 * counted), then notes.
 */
export function formatLintReport(r: LintReport, maxPerLinter = 10): string[] {
  const lines = [`${reportTitle(r)}: ${r.findings.length === 0 ? 'clean' : `${plural(r.errors, 'error')}, ${plural(r.warnings, 'warning')}`}`];
  const byLinter = new Map<string, LintReportFinding[]>();
  for (const f of r.findings) byLinter.set(f.linter, [...(byLinter.get(f.linter) ?? []), f]);
  for (const [linter, list] of byLinter) {
    for (const f of list.slice(0, maxPerLinter)) {
      lines.push(`  ${f.severity.padEnd(7)} ${linter}: ${f.path === undefined ? '' : `${f.path}: `}${f.message}`);
    }
    if (list.length > maxPerLinter) lines.push(`  ${list[0]?.severity.padEnd(7) ?? ''} ${linter}: ... and ${list.length - maxPerLinter} more`);
  }
  for (const n of r.notes) lines.push(`  note    ${n}`);
  return lines;
}

/** Raised when a package has findings of error severity; details list them. */
export class LintFailedError extends BuilderError {
  override name = 'LintFailedError';
  readonly reports: LintReport[];
  constructor(reports: LintReport[]) {
    const failing = reports.filter((r) => r.errors > 0);
    const summary = failing
      .map((r) => `${reportTitle(r)} (${[...new Set(r.findings.filter((f) => f.severity === 'error').map((f) => f.linter))].join(', ')})`)
      .join('; ');
    const details = failing.flatMap((r) =>
      r.findings
        .filter((f) => f.severity === 'error')
        .map((f) => `${reportTitle(r)}: ${f.linter}: ${f.path === undefined ? '' : `${f.path}: `}${f.message}`),
    );
    super(`lint failed: ${summary}`, { details });
    this.reports = reports;
  }
}

/** Throws LintFailedError when any report has an error-severity finding. */
export function failOnLintErrors(reports: LintReport[]): void {
  if (reports.some((r) => r.errors > 0)) throw new LintFailedError(reports);
}
