// The base initramfs of the build VM: static busybox, the dropbear SSH server with exactly the shared libraries
// it needs, our init program and the build-channel helpers, plus any extra packages and hook files. It is
// built once per set of inputs and cached by their digest; per-run data (keys, modules) is appended later as a
// separate archive, so this file is never rewritten. A source (source.ts: Debian packages or APK repositories)
// fills a private tree; the one assembly step here picks the same things from it whichever source filled it.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { copyFile, lstat, mkdir, mkdtemp, readFile, readlink, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { readElf } from '../elf/reader.ts';
import { BuilderError } from '../errors.ts';
import { CpioWriter } from './cpio.ts';
import { libraryClosure, resolveInTree } from './libraries.ts';
import type { InitramfsContents } from '../seams.ts';
import { type InitramfsSource, planSource, populateSource, type SourcePlan, sourceIdentity } from './source.ts';
import { OBSERVABILITY_GUEST_FILES } from '../observe/guest-files.ts';

export { INITRAMFS_SOURCES } from './source.ts';
export type { InitramfsSource } from './source.ts';
export { DEBIAN_BASE_PACKAGES } from './debian.ts';
export { APK_BUSYBOX_NAMES, APK_SSH_SERVER_NAMES } from './apk.ts';

/** Bumped whenever the layout of the archive changes, so old cached archives are not reused. */
const FORMAT_VERSION = 2;

const BUSYBOX = 'bin/busybox';
const SSH_SERVER = 'usr/sbin/dropbear';
/** How enter-root finds setpriv and the loader and libraries to run it with from inside the build root. */
export const SETPRIV_CONF = 'usr/libexec/builder/setpriv.conf';
/** Where an extra package (e.g. Alpine's `setpriv`) may put it. */
const SETPRIV_CANDIDATES = ['usr/bin/setpriv', 'bin/setpriv'];
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
  /** The builder cache dir; archives go to `<cacheDir>/initramfs/`, APK downloads to `<cacheDir>/initramfs/downloads/`. */
  cacheDir: string;
  from?: InitramfsSource;
  /** Extra packages whose files are added (with the libraries their programs need). */
  packages?: string[];
  /** --from apk: repositories (directories or http(s) URLs holding `<arch>/APKINDEX.tar.gz`), searched in order. */
  repositories?: string[];
  /** --from apk: trusted public keys (`*.pub` files, directories of them, or http(s) URLs). */
  keyring?: string[];
  /** --from apk: accept unsigned or untrusted indexes and packages (part of the digest). */
  ignoreSignatures?: boolean;
  /** --from apk: architecture in apk's naming (default: the host's). */
  arch?: string;
  /** Where relative repository and keyring paths are resolved (default: the current directory). */
  baseDir?: string;
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
  return [...new Set((options.packages ?? []).map((p) => p.trim()).filter((p) => p !== ''))].sort();
}

function planFor(options: BaseInitramfsOptions, log: (line: string) => void): Promise<SourcePlan> {
  return planSource({
    from: options.from ?? 'debian',
    packages: normalisedPackages(options),
    repositories: options.repositories ?? [],
    keyring: options.keyring ?? [],
    ignoreSignatures: options.ignoreSignatures ?? false,
    arch: options.arch,
    baseDir: options.baseDir ?? process.cwd(),
    downloadDir: join(options.cacheDir, 'initramfs', 'downloads'),
    log,
  });
}

async function digestOf(plan: SourcePlan, files: readonly InitramfsFile[]): Promise<string> {
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ format: FORMAT_VERSION, from: plan.from, source: sourceIdentity(plan) }));
  for (const p of await guestPrograms()) hash.update(`\0${p.path} ${p.mode.toString(8)}\0`).update(p.data);
  for (const f of [...files].sort((a, b) => a.path.localeCompare(b.path))) {
    hash.update(`\0file ${f.path} ${f.mode.toString(8)}\0`).update(f.data);
  }
  return hash.digest('hex').slice(0, 32);
}

/**
 * The digest of everything the archive is made from; it names the cached file. For APK repositories this
 * reads and verifies the indexes and resolves the packages, since the exact packages are part of it.
 */
export async function baseInitramfsDigest(options: BaseInitramfsOptions): Promise<string> {
  return digestOf(await planFor(options, options.log ?? (() => undefined)), options.files ?? []);
}

export function baseInitramfsPath(cacheDir: string, digest: string): string {
  return join(cacheDir, 'initramfs', `base-${digest}.cpio.gz`);
}

/**
 * The cached base archive for these inputs, building it first when it is not there. A build happens in a
 * private temp dir and the archive is renamed into the cache only when complete.
 */
export async function ensureBaseInitramfs(options: BaseInitramfsOptions): Promise<BaseInitramfs> {
  const log = options.log ?? (() => undefined);
  const source = await planFor(options, log);
  const digest = await digestOf(source, options.files ?? []);
  const path = baseInitramfsPath(options.cacheDir, digest);
  const existing = await stat(path).catch(() => undefined);
  if (existing?.isFile()) return { path, digest, cached: true, bytes: existing.size };

  await mkdir(dirname(path), { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'builder-initramfs-'));
  const temp = `${path}.${process.pid}.tmp`;
  try {
    const tree = join(work, 'tree');
    await mkdir(tree);
    const contents = await populateSource(source, { tree, work }, log, options.signal);
    log('assembling the base initramfs');
    const plan = await planArchive(tree, contents, options.files ?? [], options.signal);
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

/** A program in the tree: the regular file it is (or leads to) and the symlinks on the way. */
async function programInTree(tree: string, rel: string, what: string): Promise<{ real: string; links: string[]; size: number; mode: number }> {
  const visited = new Set<string>();
  const real = await resolveInTree(tree, rel, visited);
  const st = real === null ? undefined : await stat(join(tree, real));
  if (real === null || !st?.isFile()) throw new BuilderError(`the unpacked packages have no ${what} at /${rel}`);
  return { real, links: [...visited], size: st.size, mode: st.mode & 0o7777 };
}

/** Picks from the filled tree what the VM needs; the same for every source. */
async function planArchive(tree: string, contents: InitramfsContents, files: InitramfsFile[], signal?: AbortSignal): Promise<ArchivePlan> {
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

  // Steps run busybox from inside the build root (/proc/1/root/bin/busybox), where its libraries are not.
  const busybox = await programInTree(tree, contents.busybox, 'busybox');
  const elf = await readElf(join(tree, busybox.real));
  if (elf === null) throw new BuilderError(`/${contents.busybox} is not an ELF program`);
  if (elf.interpreter !== null || elf.needed.length > 0) {
    const needs = [elf.interpreter, ...elf.needed].filter((n) => n !== null).join(', ');
    throw new BuilderError(
      `/${contents.busybox} is dynamically linked (needs ${needs}); the guest runs busybox inside the build root, so it must be a static build (such as the busybox-static package)`,
    );
  }
  plan.set(BUSYBOX, { kind: 'file', source: join(tree, busybox.real), size: busybox.size, mode: busybox.mode });
  // Busybox names its applets and where they belong; links are made now rather than at every boot.
  const applets = await execa(join(tree, busybox.real), ['--list-full'], { cancelSignal: signal });
  for (const line of applets.stdout.split('\n')) {
    const applet = line.trim().replace(/^\/+/, '');
    if (applet === '' || applet === BUSYBOX) continue;
    plan.set(applet, { kind: 'symlink', target: '/bin/busybox' });
  }

  // The server keeps its own place (a RUNPATH may be relative to it); init finds it on PATH as /usr/sbin/dropbear.
  const server = await programInTree(tree, contents.sshServer, 'SSH server');
  for (const link of server.links) await plan.fromTree(tree, link);
  if (contents.sshServer !== SSH_SERVER) plan.set(SSH_SERVER, { kind: 'symlink', target: `/${contents.sshServer}` });
  const programs = [server.real];
  for (const p of contents.extraFiles) {
    if (SKIPPED_PREFIXES.some((s) => `${p}/`.startsWith(s))) continue;
    const st = await lstat(join(tree, p)).catch(() => undefined);
    // Directories come with the paths under them; a path another package replaced is not this package's.
    if (!st || st.isDirectory()) continue;
    await plan.fromTree(tree, p);
    if (st.isFile()) programs.push(p);
  }
  const closure = await libraryClosure(tree, programs);
  for (const p of closure.paths) await plan.fromTree(tree, p);
  const setpriv = contents.setpriv ?? contents.extraFiles.find((p) => SETPRIV_CANDIDATES.includes(p));
  if (setpriv !== undefined) await addSetpriv(plan, tree, setpriv);

  for (const p of await guestPrograms()) plan.set(p.path, { kind: 'data', data: p.data, mode: p.mode });
  for (const f of files) plan.set(f.path.replace(/^\/+/, ''), { kind: 'data', data: Buffer.from(f.data), mode: f.mode });
  return plan;
}

/**
 * setpriv (and what it needs) goes in with a small configuration for enter-root. Steps run it from inside the
 * build root, through /proc/1/root, so its loader and library directories are named by their real paths in
 * the archive: an absolute symlink there would resolve inside the build root instead.
 */
async function addSetpriv(plan: ArchivePlan, tree: string, rel: string): Promise<void> {
  const program = await programInTree(tree, rel, 'setpriv');
  for (const link of program.links) await plan.fromTree(tree, link);
  plan.set(program.real, { kind: 'file', source: join(tree, program.real), size: program.size, mode: program.mode });
  const elf = await readElf(join(tree, program.real));
  if (elf === null) throw new BuilderError(`/${rel} is not an ELF program`);
  const closure = await libraryClosure(tree, [program.real]);
  for (const p of closure.paths) await plan.fromTree(tree, p);
  const real = async (p: string): Promise<string> => (await resolveInTree(tree, p, new Set())) ?? p;
  const loader = elf.interpreter === null ? '' : `/${await real(elf.interpreter.replace(/^\/+/, ''))}`;
  const dirs = new Set<string>();
  for (const p of closure.paths) {
    if (p === program.real) continue;
    dirs.add(`/${await real(dirname(p))}`);
  }
  const conf = [`SETPRIV=/${program.real}`, `SETPRIV_LOADER=${loader}`, `SETPRIV_LIBS=${[...dirs].sort().join(':')}`, ''].join('\n');
  plan.set(SETPRIV_CONF, { kind: 'data', data: Buffer.from(conf), mode: 0o644 });
}
