// Debian packages as a source of initramfs contents: `apt-get download` the packages and their dependency
// closure, then unpack them with `dpkg-deb -x`. Nothing is installed and no maintainer script runs, so this
// needs neither root nor a Debian root filesystem, only apt's package lists.
import { lstat, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { BuilderError, MissingToolError, UsageError } from '../errors.ts';
import type { InitramfsContents } from '../seams.ts';

const APT_LISTS = '/var/lib/apt/lists';

/** The Debian packages every base archive is made from (util-linux for its setpriv only). */
export const DEBIAN_BASE_PACKAGES = ['busybox-static', 'dropbear-bin', 'util-linux'];
/** Where those packages put the two programs the archive is built around. */
const DEBIAN_BUSYBOX = 'bin/busybox';
const DEBIAN_SSH_SERVER = 'usr/sbin/dropbear';
const DEBIAN_SETPRIV = 'usr/bin/setpriv';

/** What a Debian-made archive is made from: package names and the state of apt's lists they resolve against. */
export interface DebianSourcePlan {
  base: string[];
  extra: string[];
  aptLists: string[];
}

export interface DebianFetchOptions {
  packages: string[];
  /** Where the .deb files are downloaded (a private temp dir). */
  downloadDir: string;
  /** Where they are unpacked, one tree for all. */
  treeDir: string;
  log: (line: string) => void;
  signal?: AbortSignal;
}

function notFound(err: unknown): boolean {
  return (err as { code?: string }).code === 'ENOENT';
}

async function tool(file: string, args: string[], options: { cwd?: string; signal?: AbortSignal; what: string }): Promise<string> {
  const result = await execa(file, args, { cwd: options.cwd, cancelSignal: options.signal, reject: false, stdin: 'ignore' });
  if (result.failed) {
    if (result.isCanceled) throw new BuilderError(`${options.what}: interrupted`, { cause: options.signal?.reason });
    if (notFound(result.cause)) {
      throw new MissingToolError(`${options.what}: ${file} is not installed (it comes with Debian's apt and dpkg packages)`);
    }
    const stderr = String(result.stderr).trim().split('\n').slice(-10);
    throw new BuilderError(`${options.what}: ${file} ${args.slice(0, 3).join(' ')}… failed (${result.shortMessage})`, { details: stderr });
  }
  return String(result.stdout);
}

/**
 * The packages plus everything they depend on (Depends and Pre-Depends, recursively), as apt sees it;
 * virtual packages are left out since one of their providers is listed too.
 */
export async function debianClosure(packages: string[], signal?: AbortSignal): Promise<string[]> {
  const out = await tool(
    'apt-cache',
    ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', ...packages],
    { signal, what: 'resolving Debian packages' },
  );
  const names = new Set<string>();
  for (const line of out.split('\n')) {
    if (line === '' || line.startsWith(' ') || line.startsWith('<')) continue;
    names.add(line.trim());
  }
  const missing = packages.filter((p) => !names.has(p));
  if (missing.length > 0) throw new BuilderError(`unknown Debian package(s): ${missing.join(', ')} (apt-get update?)`);
  return [...names].sort();
}

/** Downloads and unpacks the closure of `packages`; returns the package names unpacked. */
export async function fetchDebianPackages(options: DebianFetchOptions): Promise<string[]> {
  const closure = await debianClosure(options.packages, options.signal);
  options.log(`downloading ${closure.length} Debian packages: ${closure.join(' ')}`);
  // Downloading as root into a private directory: apt's _apt sandbox user could not write there.
  await tool('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', ...closure], {
    cwd: options.downloadDir,
    signal: options.signal,
    what: 'downloading Debian packages',
  });
  const debs = (await readdir(options.downloadDir)).filter((f) => f.endsWith('.deb')).sort();
  for (const deb of debs) {
    await tool('dpkg-deb', ['-x', join(options.downloadDir, deb), options.treeDir], { signal: options.signal, what: `unpacking ${deb}` });
  }
  return closure;
}

/**
 * Identifies the state of apt's package lists (file names, sizes, times): when `apt-get update` brings new
 * versions, this changes, and so does the digest of anything built from those packages.
 */
export async function aptListsIdentity(listsDir: string = APT_LISTS): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir(listsDir)).filter((n) => n.includes('_Packages') || n.endsWith('Release')).sort();
  } catch (err) {
    if (notFound(err)) return [];
    throw err;
  }
  const out: string[] = [];
  for (const n of names) {
    const st = await stat(join(listsDir, n));
    out.push(`${n} ${st.size} ${Math.floor(st.mtimeMs)}`);
  }
  return out;
}

export async function planDebianSource(extra: readonly string[]): Promise<DebianSourcePlan> {
  for (const p of extra) {
    if (!/^[a-z0-9][a-z0-9+.-]*$/.test(p)) throw new UsageError(`--package: "${p}" is not a valid Debian package name`);
  }
  return { base: [...DEBIAN_BASE_PACKAGES], extra: [...extra], aptLists: await aptListsIdentity() };
}

export function debianSourceIdentity(plan: DebianSourcePlan): unknown {
  return { base: plan.base, extra: plan.extra, apt: plan.aptLists };
}

/** Downloads and unpacks the packages into `tree`; the extra packages' own paths are listed for the assembly. */
export async function populateDebianTree(
  plan: DebianSourcePlan,
  dirs: { tree: string; work: string },
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<InitramfsContents> {
  const downloads = join(dirs.work, 'debs');
  await mkdir(downloads);
  await fetchDebianPackages({ packages: [...plan.base, ...plan.extra], downloadDir: downloads, treeDir: dirs.tree, log, signal });
  const extraFiles: string[] = [];
  for (const pkg of plan.extra) extraFiles.push(...(await packagePaths(downloads, pkg, dirs.work, signal)));
  return { busybox: DEBIAN_BUSYBOX, sshServer: DEBIAN_SSH_SERVER, setpriv: DEBIAN_SETPRIV, extraFiles };
}

async function walk(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(join(root, rel), { withFileTypes: true })) {
    const path = rel === '' ? d.name : `${rel}/${d.name}`;
    out.push(path);
    if (d.isDirectory()) out.push(...(await walk(root, path)));
  }
  return out;
}

/**
 * The paths one downloaded package owns. It is unpacked on its own to find out: the shared tree cannot tell
 * which package a path came from.
 */
async function packagePaths(downloads: string, pkg: string, work: string, signal?: AbortSignal): Promise<string[]> {
  const deb = (await readdir(downloads)).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!deb) throw new BuilderError(`package ${pkg} was not downloaded`);
  const own = await mkdtemp(join(work, 'pkg-'));
  try {
    await tool('dpkg-deb', ['-x', join(downloads, deb), own], { signal, what: `unpacking ${deb}` });
    const out: string[] = [];
    for (const p of await walk(own)) if (!(await lstat(join(own, p))).isDirectory()) out.push(p);
    return out;
  } finally {
    await rm(own, { recursive: true, force: true });
  }
}
