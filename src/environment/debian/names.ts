// Which source serves each package name a build asks for when its root has a Debian base. In order: an APK
// repository that has the name (local packages win), the base itself (a Debian package, or what it provides as
// `cmd:NAME`, `pc:NAME`, `so:NAME`), then the package-name map (Wolfi names → Debian packages, installed into a
// layer over the base). Pure: the caller supplies what the repositories offer and what the base provides.
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BuilderError, ConfigError, type ConfigProblem } from '../../errors.ts';
import { editDistance } from '../../config/suggest.ts';
import { parseDependency } from '../apk/resolve.ts';
import { baseProvision, type BaseProvides } from '../base-provides.ts';
import { mapPackageName, type PackageMap } from './name-map.ts';

export type EnvironmentPurpose = 'build' | 'test';

export interface NameRequest {
  /** The spec's package list as written (`git`, `zlib-dev`, `libgreet>=1.0`). */
  world: readonly string[];
  origins?: Readonly<Record<string, readonly string[]>>;
  purpose?: EnvironmentPurpose;
  /** Whether some APK repository offers the name (as a package or a provides). */
  apkHas: (name: string) => boolean;
  base: BaseProvides;
  map: PackageMap;
  suite: string;
  /** Every package name of the suite (from the base's apt lists); unknown for old bases. */
  suiteNames?: ReadonlySet<string>;
}

export interface NameAssignment {
  /** World entries left for the APK resolver. */
  apk: string[];
  /** name → how the base provides it (`git`, `cmd:ninja`). */
  fromBase: Map<string, string>;
  /** name → the Debian packages the map names, and which map entry said so. */
  mapped: Map<string, { packages: string[]; source: string }>;
  /** The Debian packages to install into a layer (sorted, unique, not yet installed in the base). */
  install: string[];
  warnings: string[];
}

/** One line per name for the log: where each came from. */
export function describeAssignment(a: NameAssignment): string[] {
  const lines: string[] = [];
  for (const name of a.apk) lines.push(`environment: ${name}: APK repository`);
  for (const [name, via] of a.fromBase) lines.push(`environment: ${name}: base${via !== name ? ` (${via})` : ''}`);
  for (const [name, m] of a.mapped) {
    lines.push(`environment: ${name}: ${m.source} → ${m.packages.length > 0 ? `Debian ${m.packages.join(', ')}` : 'nothing to install'}`);
  }
  return lines;
}

export function environmentWord(purpose: EnvironmentPurpose | undefined): string {
  return purpose === 'test' ? 'test environment' : 'build environment';
}

/** Who asked for `name`, for errors: recipe lines and pipelines, or the environment as a whole. */
export function askedBy(name: string, origins: NameRequest['origins'], purpose: EnvironmentPurpose | undefined): string {
  const list = origins?.[name];
  return list && list.length > 0 ? list.join('; ') : `the ${environmentWord(purpose)}`;
}

/** The Debian names closest to `name` (at most 3), from the suite's list. */
export function closestNames(name: string, candidates: Iterable<string>): string[] {
  const scored: { n: string; d: number }[] = [];
  const stem = name.replace(/-dev$/, '');
  for (const c of candidates) {
    // Only plausible candidates get the (quadratic) edit distance: the suite has some 60,000 names.
    const prefixed = stem.length >= 3 && (c.startsWith(stem) || c.startsWith(`lib${stem}`));
    if (!prefixed && (Math.abs(c.length - name.length) > 3 || c.slice(0, 2) !== name.slice(0, 2))) continue;
    let d = Math.min(editDistance(name, c), editDistance(stem, c.replace(/-dev$/, '')) + 1);
    // A Debian name that starts with the Wolfi stem (libxml → libxml2-dev, zlib → zlib1g-dev) beats a typo-close one.
    if (prefixed) d = Math.min(d, 0.5 + Math.abs(c.length - name.length) / 10 + (c.endsWith('-dev') === name.endsWith('-dev') ? 0 : 1));
    scored.push({ n: c, d });
  }
  return scored
    .sort((a, b) => a.d - b.d || a.n.localeCompare(b.n))
    .filter((s) => s.d <= Math.max(2, name.length / 2))
    .slice(0, 3)
    .map((s) => s.n);
}

/** Sorts the request's names into APK, base and map; one error lists every name none of them serves. */
export function assignNames(request: NameRequest): NameAssignment {
  const result: NameAssignment = { apk: [], fromBase: new Map(), mapped: new Map(), install: [], warnings: [] };
  const unmapped: string[] = [];
  const missingTargets: ConfigProblem[] = [];
  const builtinMissing: string[] = [];
  const install = new Set<string>();
  for (const entry of request.world) {
    const dep = parseDependency(entry);
    if (dep.conflict || request.apkHas(dep.name)) {
      result.apk.push(entry);
      continue;
    }
    const via = baseProvision(request.base, dep.name);
    if (via !== undefined) {
      result.fromBase.set(dep.name, via);
      continue;
    }
    const mapped = mapPackageName(request.map, dep.name, request.suite);
    if (!mapped) {
      unmapped.push(dep.name);
      continue;
    }
    if (mapped.warning) result.warnings.push(`environment: warning: ${mapped.warning}`);
    const lacking = request.suiteNames ? mapped.packages.filter((p) => !request.suiteNames!.has(p)) : [];
    if (lacking.length > 0) {
      if (request.map.file !== undefined && mapped.loc.file === request.map.file) {
        missingTargets.push({ location: mapped.loc, path: dep.name, message: `Debian ${request.suite} has no package ${lacking.join(', ')}` });
      } else if (mapped.source.startsWith('built-in family')) {
        unmapped.push(dep.name);
      } else {
        builtinMissing.push(`${dep.name} → ${lacking.join(', ')} (${mapped.source}, ${mapped.loc.file}:${mapped.loc.line}:${mapped.loc.col})`);
      }
      continue;
    }
    result.mapped.set(dep.name, { packages: mapped.packages, source: mapped.source });
    for (const p of mapped.packages) if (!request.base.has(p)) install.add(p);
  }
  if (missingTargets.length > 0) throw new ConfigError(missingTargets);
  if (unmapped.length > 0 || builtinMissing.length > 0) {
    const names = [...new Set(unmapped)];
    const details = names.map((n) => {
      const close = request.suiteNames ? closestNames(n, request.suiteNames) : [];
      return `${n}: required by ${askedBy(n, request.origins, request.purpose)}${close.length > 0 ? `; closest Debian packages: ${close.join(', ')}` : ''}`;
    });
    details.push(...builtinMissing.map((l) => `${l}: not in Debian ${request.suite}`));
    details.push(`fix: add them to a --package-map file (name: [debian, packages], or name: [] when nothing is needed)`);
    throw new UnmappedNamesError(names, request.purpose, request.suite, details);
  }
  result.install = [...install].sort();
  return result;
}

/** Names of the request that no APK repository, the base or the map serves. */
export class UnmappedNamesError extends BuilderError {
  override name = 'UnmappedNamesError';
  readonly names: string[];
  constructor(names: string[], purpose: EnvironmentPurpose | undefined, suite: string, details: string[]) {
    super(`cannot make the ${environmentWord(purpose)} on Debian ${suite}: no APK repository, base package or map entry for ${names.join(', ') || 'some names'}`, { details });
    this.names = names;
  }
}

/** Every package name in the root's apt lists (kept by the base), or undefined when it has none. */
export async function readSuitePackageNames(rootfs: string): Promise<Set<string> | undefined> {
  const dir = join(rootfs, 'var/lib/apt/lists');
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('_Packages'));
  if (files.length === 0) return undefined;
  const names = new Set<string>();
  for (const f of files) {
    const lines = createInterface({ input: createReadStream(join(dir, f), { highWaterMark: 1 << 20 }), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.startsWith('Package: ')) names.add(line.slice(9).trim());
      else if (line.startsWith('Provides: ')) {
        // Virtual names apt can install when one package provides them (e.g. awk).
        for (const p of line.slice(10).split(',')) {
          const n = p.trim().split(/[\s(]/)[0];
          if (n) names.add(n);
        }
      }
    }
  }
  return names;
}
