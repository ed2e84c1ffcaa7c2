// `builder doctor`: every check, in the order a build meets them, and the verdict.
import { join } from 'node:path';
import { DEFAULT_DEBIAN_MIRROR, splitRepositories } from '../environment/base.ts';
import {
  checkBwrap,
  checkKernel,
  checkKvm,
  checkMirror,
  checkMmdebstrap,
  checkNode,
  checkQemu,
  checkSpace,
  checkUserNamespaces,
  type CheckResult,
} from './checks.ts';

export interface DoctorOptions {
  /** name → directory of each cache (`roots`, `cache`, `apk-cache`). */
  caches: Record<string, string>;
  /** Mirrors and repository URLs to reach. */
  mirrors: string[];
  /** Where the KVM probe verdict is kept (the qemu runner's sealed artifact dir). */
  artifactDir: string;
  signal?: AbortSignal;
}

export interface DoctorReport {
  ok: boolean;
  checks: CheckResult[];
}

/** The Debian mirror and HTTP(S) APK repositories a recipe's repositories name. */
export function mirrorsOf(repositories: readonly string[], baseDir: string): string[] {
  const { base, repositories: apk } = splitRepositories(repositories, undefined, baseDir);
  return [...(base.kind === 'debian' ? [base.mirror] : []), ...apk.filter((r) => /^https?:\/\//.test(r.replace(/^@\S+\s+/, '')))];
}

export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const kernel = await checkKernel();
  const checks: CheckResult[] = [
    checkNode(),
    await checkUserNamespaces(),
    await checkBwrap(),
    await checkQemu(),
    { id: kernel.id, status: kernel.status, detail: kernel.detail, ...(kernel.fix ? { fix: kernel.fix } : {}) },
    await checkKvm(kernel.image, options.artifactDir, options.signal),
    await checkMmdebstrap(),
  ];
  for (const [name, dir] of Object.entries(options.caches)) checks.push(await checkSpace(name, dir));
  const mirrors = [...new Set(options.mirrors.length > 0 ? options.mirrors : [DEFAULT_DEBIAN_MIRROR])];
  checks.push(...(await Promise.all(mirrors.map((m) => checkMirror(m)))));
  return { ok: checks.every((c) => c.status !== 'fail'), checks };
}

export function formatReport(report: DoctorReport): string[] {
  const mark = { ok: '✔', warn: '!', fail: '✖' } as const;
  const lines: string[] = [];
  for (const c of report.checks) {
    lines.push(`${mark[c.status]} ${c.id}: ${c.detail}`);
    if (c.fix && c.status !== 'ok') lines.push(`    fix: ${c.fix}`);
  }
  const failed = report.checks.filter((c) => c.status === 'fail').length;
  const warned = report.checks.filter((c) => c.status === 'warn').length;
  lines.push(failed === 0 ? `all checks passed${warned > 0 ? ` (${warned} warning(s))` : ''}` : `${failed} check(s) failed${warned > 0 ? `, ${warned} warning(s)` : ''}`);
  return lines;
}

export function defaultCaches(rootCacheDir: string, cacheDir: string, apkCacheDir?: string): Record<string, string> {
  return { 'root-cache': rootCacheDir, cache: cacheDir, 'apk-cache': apkCacheDir ?? join(rootCacheDir, 'downloads') };
}
