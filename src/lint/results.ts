// `--persist-lint-results`: each package's lint report as JSON next to the package,
// `<dir>/lint-<name>-<version>-r<epoch>.json`, written atomically.
import { basename, join } from 'node:path';
import { writeBufferAtomic } from '../apk/atomic.ts';
import type { LintReport } from './lint.ts';

export interface LintResultsFile {
  package: string;
  version: string | null;
  arch: string;
  /** File name of the linted package, when it was an .apk. */
  file: string | null;
  errors: number;
  warnings: number;
  findings: { linter: string; severity: string; path: string | null; message: string }[];
  notes: string[];
}

export function lintResultsFileName(report: LintReport): string {
  return `lint-${report.package}${report.version === null ? '' : `-${report.version}`}.json`;
}

export function lintResultsJson(report: LintReport): string {
  const doc: LintResultsFile = {
    package: report.package,
    version: report.version,
    arch: report.arch,
    file: report.file === null ? null : basename(report.file),
    errors: report.errors,
    warnings: report.warnings,
    findings: report.findings.map((f) => ({ linter: f.linter, severity: f.severity, path: f.path ?? null, message: f.message })),
    notes: report.notes,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** Writes the report into `dir` (the directory holding the packages); returns the path written. */
export async function writeLintResults(dir: string, report: LintReport): Promise<string> {
  const path = join(dir, lintResultsFileName(report));
  await writeBufferAtomic(path, Buffer.from(lintResultsJson(report)), { mode: 0o644, overwrite: true, sync: false });
  return path;
}
