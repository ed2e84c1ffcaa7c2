// APK repositories as a source of initramfs contents, through builder's own resolver and installer (the ones
// that make build roots): indexes are verified against the keyring, busybox, dropbear and the extra packages
// are resolved with their dependencies, and the packages are installed — checksums, signatures and datahash
// checked, no scriptlets — into a private tree the assembly step then picks from.
import { stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { IndexEntry } from '../apk/index.ts';
import { BuilderError, errorMessage, PackageFormatError, UsageError } from '../errors.ts';
import { installPackages } from '../environment/apk/install.ts';
import {
  type LoadedKeyring,
  type LoadedRepository,
  loadKeys,
  loadRepository,
  locateRepository,
  packageFile,
  type RepositoryLocation,
} from '../environment/apk/repository.ts';
import { type Dependency, parseDependency, resolve, type Resolution, ResolveError, type Resolvable } from '../environment/apk/resolve.ts';
import { readRootFile } from '../environment/accounts.ts';
import { resolveInTree } from './libraries.ts';
import type { InitramfsContents } from '../seams.ts';

/**
 * The names looked up for busybox, first found wins: a package or a `provides` of that name. Alpine's
 * `busybox-static` installs `/bin/busybox.static`, Debian-made ones `/bin/busybox`; either is accepted, as long
 * as it is statically linked (steps run it from inside the build root, whose libraries are not its own).
 */
export const APK_BUSYBOX_NAMES = ['busybox-static', 'busybox', 'cmd:busybox'];
/** The names looked up for the SSH server. */
export const APK_SSH_SERVER_NAMES = ['dropbear', 'cmd:dropbear'];
/** File names that are the busybox program, preferred first. */
const BUSYBOX_FILES = ['busybox.static', 'busybox'];
const SSH_SERVER_FILES = ['dropbear'];

export interface ApkSourceRequest {
  repositories: string[];
  keyring: string[];
  ignoreSignatures: boolean;
  arch: string;
  baseDir: string;
  downloadDir: string;
  /** Extra packages: names, `name=1.2-r0`-style constraints, or virtuals such as `cmd:strace`. */
  extra: string[];
  log: (line: string) => void;
}

/** One requested name and the package chosen for it. */
export interface ApkChoice {
  requested: string;
  pkgname: string;
}

export interface ApkSourcePlan {
  arch: string;
  repositories: LoadedRepository[];
  keys: LoadedKeyring;
  ignoreSignatures: boolean;
  downloadDir: string;
  busybox: ApkChoice;
  sshServer: ApkChoice;
  extra: ApkChoice[];
  /** Dependencies first. */
  install: { entry: IndexEntry; location: RepositoryLocation }[];
}

/**
 * The verifier's reason for refusing a signature, when `err` is an UNTRUSTED one. The innermost error is used:
 * wrappers on the way add hints that name the recipe's keyring settings, not this command's flags.
 */
function untrustedReason(err: unknown): { subject: string; reason: string } | undefined {
  let found: { subject: string; reason: string } | undefined;
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const m = /^(.*): UNTRUSTED signature: (.*)$/.exec(e.message);
    if (e instanceof PackageFormatError && m) found = { subject: m[1]!, reason: m[2]! };
  }
  return found;
}

function untrusted(what: string, reason: string, err: unknown): PackageFormatError {
  return new PackageFormatError(
    `--from apk: ${what} is not trusted (${reason}); add its public key with --keyring KEY.pub, or pass --ignore-signatures`,
    { cause: err },
  );
}

/** Whether any package in the repositories is, or provides, `name` for this architecture. */
function offered(repositories: readonly LoadedRepository[], arch: string, name: string): boolean {
  return repositories.some((r) => r.index.entries.some((e) => (e.arch === arch || e.arch === 'noarch') && isOrProvides(e, name)));
}

function isOrProvides(pkg: Resolvable, name: string): boolean {
  return pkg.pkgname === name || pkg.provides.some((p) => p === name || p.startsWith(`${name}=`));
}

/** Loads and verifies the indexes, then resolves busybox, dropbear and the extras with their dependencies. */
export async function resolveApkSource(request: ApkSourceRequest): Promise<ApkSourcePlan> {
  if (request.repositories.length === 0) {
    throw new UsageError('--from apk needs at least one --repository DIR|URL (holding <arch>/APKINDEX.tar.gz)');
  }
  const extraDeps: Dependency[] = [];
  for (const p of request.extra) {
    let dep: Dependency;
    try {
      dep = parseDependency(p);
    } catch (err) {
      throw new UsageError(`--package: ${errorMessage(err)}`);
    }
    if (dep.conflict) throw new UsageError(`--package: "${p}" is a conflict, not a package`);
    extraDeps.push(dep);
  }
  if (request.ignoreSignatures) request.log('--ignore-signatures: APK indexes and packages are NOT verified');
  const keys = await loadKeys(request.keyring, request.baseDir, request.downloadDir);
  const locations = request.repositories.map((r) => locateRepository(r, request.arch, request.baseDir));
  const repositories: LoadedRepository[] = [];
  for (const location of locations) {
    try {
      repositories.push(await loadRepository(location, { keyring: keys.keyring, ignoreSignatures: request.ignoreSignatures, cacheDir: request.downloadDir }));
    } catch (err) {
      const untrustedBy = untrustedReason(err);
      if (untrustedBy !== undefined) throw untrusted(`repository ${location.label}`, untrustedBy.reason, err);
      throw err;
    }
  }
  const searched = `searched ${repositories.map((r) => r.location.label).join(', ')}`;

  const pick = (names: readonly string[], what: string): string => {
    const name = names.find((n) => offered(repositories, request.arch, n));
    if (name === undefined) {
      throw new BuilderError(
        `--from apk: no ${what} in the APK repositories: no package is or provides ${names.join(', ')} for ${request.arch} (${searched})`,
      );
    }
    return name;
  };
  const busybox = pick(APK_BUSYBOX_NAMES, 'busybox');
  const sshServer = pick(APK_SSH_SERVER_NAMES, 'SSH server (dropbear)');
  for (const dep of extraDeps) {
    if (!offered(repositories, request.arch, dep.name)) {
      throw new BuilderError(`--package ${dep.text}: no such package in the APK repositories for ${request.arch} (${searched})`);
    }
  }

  let resolution: Resolution<IndexEntry>;
  try {
    resolution = resolve({
      world: [busybox, sshServer, ...extraDeps.map((d) => d.text)],
      repositories: repositories.map((r) => ({ label: r.location.label, packages: r.index.entries })),
      arch: request.arch,
    });
  } catch (err) {
    if (!(err instanceof ResolveError)) throw err;
    const head = err.missing.length > 0 ? `: nothing provides ${err.missing.join(', ')}` : '';
    throw new BuilderError(`--from apk: cannot resolve the initramfs packages${head}`, { details: err.details, cause: err });
  }
  const chosen = (requested: string): ApkChoice => {
    const name = parseDependency(requested).name;
    const pkgs = resolution.install.map((r) => r.pkg);
    const pkg = pkgs.find((p) => p.pkgname === name) ?? pkgs.find((p) => isOrProvides(p, name));
    if (pkg === undefined) throw new Error(`internal: ${requested} resolved to no package`);
    return { requested, pkgname: pkg.pkgname };
  };
  const install = resolution.install.map((r) => ({
    entry: r.pkg,
    location: repositories.find((l) => l.location.label === r.repository)!.location,
  }));
  request.log(`resolved ${install.length} APK packages: ${install.map((p) => `${p.entry.pkgname}-${p.entry.pkgver}`).join(' ')}`);
  return {
    arch: request.arch,
    repositories,
    keys,
    ignoreSignatures: request.ignoreSignatures,
    downloadDir: request.downloadDir,
    busybox: chosen(busybox),
    sshServer: chosen(sshServer),
    extra: extraDeps.map((d) => chosen(d.text)),
    install,
  };
}

/** What the archive's digest covers: the exact packages and the indexes they were resolved from. */
export function apkSourceIdentity(plan: ApkSourcePlan): unknown {
  return {
    arch: plan.arch,
    indexes: plan.repositories.map((r) => r.indexSha256),
    keys: plan.keys.fingerprints,
    ignoreSignatures: plan.ignoreSignatures,
    roles: { busybox: plan.busybox, sshServer: plan.sshServer, extra: plan.extra },
    packages: plan.install.map((p) => ({ name: p.entry.pkgname, version: p.entry.pkgver, checksum: p.entry.checksum })),
  };
}

/** Paths owned by each installed package, from apk's installed database (`F:` directories, `R:` files). */
export function installedPaths(db: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let paths: string[] | undefined;
  let dir = '';
  for (const line of db.split('\n')) {
    if (line === '') {
      paths = undefined;
      continue;
    }
    const key = line.slice(0, 2);
    const value = line.slice(2);
    if (key === 'P:') {
      paths = [];
      out.set(value, paths);
      dir = '';
    } else if (key === 'F:' && paths) {
      dir = value;
      if (dir !== '') paths.push(dir);
    } else if (key === 'R:' && paths) {
      paths.push(dir === '' ? value : `${dir}/${value}`);
    }
  }
  return out;
}

/** The package's program with one of `names` (preferred first) that is, or leads to, a regular file. */
async function findProgram(tree: string, paths: readonly string[], names: readonly string[], what: string): Promise<string> {
  for (const name of names) {
    // Shorter paths first, so /bin/busybox wins over some copy deep under /usr/share.
    const candidates = paths.filter((p) => posix.basename(p) === name).sort((a, b) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1));
    for (const c of candidates) {
      const real = await resolveInTree(tree, c, new Set());
      if (real !== null && (await stat(join(tree, real))).isFile()) return c;
    }
  }
  throw new BuilderError(`--from apk: ${what} installs no ${names.join(' or ')} program`);
}

/** Downloads (remote repositories only) and installs the planned packages into `tree`. */
export async function installApkSource(plan: ApkSourcePlan, tree: string, log: (line: string) => void, signal?: AbortSignal): Promise<InitramfsContents> {
  const files = [];
  for (const p of plan.install) {
    signal?.throwIfAborted();
    files.push({ entry: p.entry, file: await packageFile(p.location, p.entry, plan.downloadDir), repository: p.location.label });
  }
  signal?.throwIfAborted();
  try {
    const result = await installPackages({
      root: tree,
      packages: files,
      keyring: plan.keys.keyring,
      ignoreSignatures: plan.ignoreSignatures,
      runScriptlets: false,
      log,
    });
    log(`installed ${result.packages} APK packages (${result.entries} entries, ${(result.bytes / 1e6).toFixed(1)} MB)`);
  } catch (err) {
    // The index vouched for the package's checksum, but the package itself must be signed by a trusted key too.
    const untrustedBy = untrustedReason(err);
    if (untrustedBy !== undefined) throw untrusted(untrustedBy.subject, untrustedBy.reason, err);
    throw err;
  }
  signal?.throwIfAborted();
  const owned = installedPaths(await readRootFile(tree, 'lib/apk/db/installed'));
  const pathsOf = (choice: ApkChoice): string[] => owned.get(choice.pkgname) ?? [];
  const label = (choice: ApkChoice): string =>
    choice.pkgname === choice.requested ? `package ${choice.pkgname}` : `package ${choice.pkgname} (chosen for ${choice.requested})`;
  return {
    busybox: await findProgram(tree, pathsOf(plan.busybox), BUSYBOX_FILES, label(plan.busybox)),
    sshServer: await findProgram(tree, pathsOf(plan.sshServer), SSH_SERVER_FILES, label(plan.sshServer)),
    extraFiles: plan.extra.flatMap(pathsOf),
  };
}
