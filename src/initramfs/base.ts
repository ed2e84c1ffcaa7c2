// The base initramfs of the build VM: static busybox, the dropbear SSH server with exactly the shared libraries
// it needs, our init program and the build-channel helpers, plus any extra packages and hook files. It is
// built once per set of inputs and cached by their digest; per-run data (keys, modules) is appended later as a
// separate archive, so this file is never rewritten.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { copyFile, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { BuilderError, UsageError } from '../errors.ts';
import { CpioWriter } from './cpio.ts';
import { aptListsIdentity, fetchDebianPackages } from './debian.ts';
import { libraryClosure } from './libraries.ts';
import { OBSERVABILITY_GUEST_FILES } from '../observe/guest-files.ts';

/** Bumped whenever the layout of the archive changes, so old cached archives are not reused. */
const FORMAT_VERSION = 1;

export const INITRAMFS_SOURCES = ['debian', 'apk'] as const;
export type InitramfsSource = (typeof INITRAMFS_SOURCES)[number];

/** The Debian packages every base archive is made from. */
export const DEBIAN_BASE_PACKAGES = ['busybox-static', 'dropbear-bin'];

const BUSYBOX = 'bin/busybox';
const SSH_SERVER = 'usr/sbin/dropbear';
/** Our programs, checked in beside this file, and where they go in the archive. */
const GUEST_PROGRAMS: { source: string; path: string; mode?: number }[] = [
  { source: 'init', path: 'init' },
  { source: 'build-channel', path: 'usr/libexec/builder/build-channel' },
  { source: 'enter-root', path: 'usr/libexec/builder/enter-root' },
  // The observability hook, its converter and the sentinel that says they are there (see src/observe/).
  ...OBSERVABILITY_GUEST_FILES,
];
/** Documentation and data a VM never reads, left out of extra packages. */
const SKIPPED_PREFIXES = ['usr/share/doc/', 'usr/share/man/', 'usr/share/info/', 'usr/share/lintian/', 'usr/share/locale/', 'usr/share/bug/'];

/** A file added to the archive as is (hooks, configuration). */
export interface InitramfsFile {
  /** Path inside the archive, e.g. `etc/builder/hooks.d/observability`. */
  path: string;
  data: Buffer | string;
  mode: number;
}

export interface BaseInitramfsOptions {
  /** The builder cache dir; archives go to `<cacheDir>/initramfs/`. */
  cacheDir: string;
  from?: InitramfsSource;
  /** Extra packages whose files are added (with the libraries their programs need). */
  packages?: string[];
  /** Extra files (configuration, hooks of your own). */
  files?: InitramfsFile[];
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface BaseInitramfs {
  path: string;
  digest: string;
  /** True when the archive was already in the cache. */
  cached: boolean;
  bytes: number;
}

type PlanEntry =
  | { kind: 'dir'; mode: number }
  | { kind: 'file'; source: string; size: number; mode: number }
  | { kind: 'data'; data: Buffer; mode: number }
  | { kind: 'symlink'; target: string }
  | { kind: 'char'; major: number; minor: number; mode: number };

/** What goes into the archive, by path; directories are implied for every parent. */
class ArchivePlan {
  readonly entries = new Map<string, PlanEntry>();

  #parents(path: string): void {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!this.entries.has(dir)) this.entries.set(dir, { kind: 'dir', mode: 0o755 });
    }
  }

  set(path: string, entry: PlanEntry): void {
    this.#parents(path);
    this.entries.set(path, entry);
  }

  /** Copies a path from the unpacked tree, keeping symlinks as symlinks. */
  async fromTree(tree: string, path: string): Promise<void> {
    const full = join(tree, path);
    const st = await lstat(full);
    if (st.isSymbolicLink()) this.set(path, { kind: 'symlink', target: await readlink(full) });
    else if (st.isDirectory()) this.set(path, { kind: 'dir', mode: st.mode & 0o7777 });
    else if (st.isFile()) this.set(path, { kind: 'file', source: full, size: st.size, mode: st.mode & 0o7777 });
  }

  async write(writer: CpioWriter): Promise<void> {
    // A plain sort puts every directory before the paths under it.
    for (const path of [...this.entries.keys()].sort()) {
      const e = this.entries.get(path)!;
      const own = { mode: 'mode' in e ? e.mode : 0o777 };
      switch (e.kind) {
        case 'dir':
          await writer.directory(path, own);
          break;
        case 'file':
          await writer.fileFrom(path, e.source, e.size, own);
          break;
        case 'data':
          await writer.file(path, e.data, own);
          break;
        case 'symlink':
          await writer.symlink(path, e.target);
          break;
        case 'char':
          await writer.device(path, 'char', e.major, e.minor, own);
          break;
      }
    }
    await writer.finish();
  }
}

function guestProgramUrl(name: string): URL {
  return new URL(`./guest/${name}`, import.meta.url);
}

async function guestPrograms(): Promise<{ path: string; data: Buffer; mode: number }[]> {
  return Promise.all(GUEST_PROGRAMS.map(async (p) => ({ path: p.path, data: await readFile(guestProgramUrl(p.source)), mode: p.mode ?? 0o755 })));
}

function normalisedPackages(options: BaseInitramfsOptions): string[] {
  const extra = [...new Set(options.packages ?? [])].sort();
  for (const p of extra) {
    if (!/^[a-z0-9][a-z0-9+.-]*$/.test(p)) throw new UsageError(`--package: "${p}" is not a valid package name`);
  }
  return extra;
}

/** The digest of everything the archive is made from; it names the cached file. */
export async function baseInitramfsDigest(options: BaseInitramfsOptions): Promise<string> {
  const from = options.from ?? 'debian';
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ format: FORMAT_VERSION, from, base: DEBIAN_BASE_PACKAGES, extra: normalisedPackages(options) }));
  for (const p of await guestPrograms()) hash.update(`\0${p.path} ${p.mode.toString(8)}\0`).update(p.data);
  for (const f of [...(options.files ?? [])].sort((a, b) => a.path.localeCompare(b.path))) {
    hash.update(`\0file ${f.path} ${f.mode.toString(8)}\0`).update(f.data);
  }
  if (from === 'debian') hash.update(`\0apt\0${(await aptListsIdentity()).join('\n')}`);
  return hash.digest('hex').slice(0, 32);
}

export function baseInitramfsPath(cacheDir: string, digest: string): string {
  return join(cacheDir, 'initramfs', `base-${digest}.cpio.gz`);
}

/**
 * The cached base archive for these inputs, building it first when it is not there. A build happens in a
 * private temp dir and the archive is renamed into the cache only when complete.
 */
export async function ensureBaseInitramfs(options: BaseInitramfsOptions): Promise<BaseInitramfs> {
  const from = options.from ?? 'debian';
  if (from === 'apk') {
    throw new UsageError(
      '--from apk: building the initramfs from APK repositories needs the native APK installer, which this build of builder does not include yet; use --from debian',
    );
  }
  const log = options.log ?? (() => undefined);
  const digest = await baseInitramfsDigest(options);
  const path = baseInitramfsPath(options.cacheDir, digest);
  const existing = await stat(path).catch(() => undefined);
  if (existing?.isFile()) return { path, digest, cached: true, bytes: existing.size };

  await mkdir(dirname(path), { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'builder-initramfs-'));
  const temp = `${path}.${process.pid}.tmp`;
  try {
    const downloads = join(work, 'debs');
    const tree = join(work, 'tree');
    await mkdir(downloads);
    await mkdir(tree);
    const extra = normalisedPackages(options);
    await fetchDebianPackages({ packages: [...DEBIAN_BASE_PACKAGES, ...extra], downloadDir: downloads, treeDir: tree, log, signal: options.signal });
    log('assembling the base initramfs');
    const plan = await planArchive(tree, downloads, extra, options.files ?? [], options.signal);
    const writer = new PassThrough({ highWaterMark: 1 << 20 });
    const cpio = new CpioWriter(writer);
    const writing = pipeline(writer, createGzip({ level: 9 }), createWriteStream(temp, { mode: 0o644 }), { signal: options.signal });
    try {
      await plan.write(cpio);
      writer.end();
    } catch (err) {
      writer.destroy(err as Error);
    }
    await writing;
    await rename(temp, path);
    const bytes = (await stat(path)).size;
    log(`base initramfs ${path} (${(bytes / 1e6).toFixed(2)} MB)`);
    return { path, digest, cached: false, bytes };
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Writes the cached archive (building it when needed) to `output` as well, via a temp name. */
export async function writeBaseInitramfs(output: string, options: BaseInitramfsOptions): Promise<BaseInitramfs> {
  const base = await ensureBaseInitramfs(options);
  const temp = join(dirname(output), `.${process.pid}.${Date.now()}.initramfs.tmp`);
  try {
    await copyFile(base.path, temp);
    await rename(temp, output);
  } catch (err) {
    await rm(temp, { force: true });
    throw new BuilderError(`-o: cannot write ${output}: ${(err as Error).message}`);
  }
  return { ...base, path: output };
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

async function planArchive(tree: string, downloads: string, extra: string[], files: InitramfsFile[], signal?: AbortSignal): Promise<ArchivePlan> {
  const plan = new ArchivePlan();
  for (const dir of ['dev', 'proc', 'sys', 'run/builder/steps', 'mnt/root', 'var/log', 'lib/modules', 'etc/builder/hooks.d']) {
    plan.set(dir, { kind: 'dir', mode: 0o755 });
  }
  plan.set('tmp', { kind: 'dir', mode: 0o1777 });
  plan.set('root', { kind: 'dir', mode: 0o700 });
  plan.set('root/.ssh', { kind: 'dir', mode: 0o700 });
  plan.set('etc/dropbear', { kind: 'dir', mode: 0o700 });
  // The kernel opens /dev/console for init's stdio before init can mount devtmpfs.
  plan.set('dev/console', { kind: 'char', major: 5, minor: 1, mode: 0o600 });
  plan.set('etc/passwd', { kind: 'data', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n'), mode: 0o644 });
  plan.set('etc/group', { kind: 'data', data: Buffer.from('root:x:0:\ntty:x:5:\n'), mode: 0o644 });

  for (const path of [BUSYBOX, SSH_SERVER]) {
    const st = await stat(join(tree, path)).catch(() => undefined);
    if (!st?.isFile()) throw new BuilderError(`the unpacked packages have no /${path}`);
  }
  // Busybox names its applets and where they belong; links are made now rather than at every boot.
  const applets = await execa(join(tree, BUSYBOX), ['--list-full'], { cancelSignal: signal });
  for (const line of applets.stdout.split('\n')) {
    const applet = line.trim().replace(/^\/+/, '');
    if (applet === '' || applet === BUSYBOX) continue;
    plan.set(applet, { kind: 'symlink', target: '/bin/busybox' });
  }

  const programs = [BUSYBOX, SSH_SERVER];
  for (const pkg of extra) {
    const files = await extraPackageFiles(downloads, pkg, tree, signal);
    for (const f of files) await plan.fromTree(tree, f);
    programs.push(...files);
  }
  // Symlinks and directories among the extra files simply resolve to nothing here.
  const regular: string[] = [];
  for (const p of programs) if ((await lstat(join(tree, p))).isFile()) regular.push(p);
  const closure = await libraryClosure(tree, regular);
  for (const p of closure.paths) await plan.fromTree(tree, p);

  for (const p of await guestPrograms()) plan.set(p.path, { kind: 'data', data: p.data, mode: p.mode });
  for (const f of files) plan.set(f.path.replace(/^\/+/, ''), { kind: 'data', data: Buffer.from(f.data), mode: f.mode });
  return plan;
}

/** The files of one extra package, as paths in the shared unpacked tree. */
async function extraPackageFiles(downloads: string, pkg: string, tree: string, signal?: AbortSignal): Promise<string[]> {
  const deb = (await readdir(downloads)).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!deb) throw new BuilderError(`package ${pkg} was not downloaded`);
  const own = await mkdtemp(join(tmpdir(), 'builder-initramfs-pkg-'));
  try {
    await execa('dpkg-deb', ['-x', join(downloads, deb), own], { cancelSignal: signal });
    const paths = (await walk(own)).filter((p) => !SKIPPED_PREFIXES.some((s) => `${p}/`.startsWith(s)));
    const out: string[] = [];
    for (const p of paths) {
      const st = await lstat(join(tree, p)).catch(() => undefined);
      if (st && !st.isDirectory()) out.push(p);
    }
    return out;
  } finally {
    await rm(own, { recursive: true, force: true });
  }
}
