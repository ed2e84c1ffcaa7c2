// Installs resolved APK packages into a root being made: each package is checked against the index entry it
// was chosen from (control checksum), its signature against the keyring and its data against `datahash`,
// then its data stream is extracted path-safely (modes, symlinks, owners when running as root). The installed
// database (`lib/apk/db/installed`), world, repositories, keys and arch files make the root a valid apk root.
// Scriptlets run only when asked, inside the root, in a bwrap sandbox sealed like a build step's.
import { createHash, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { execa } from 'execa';
import type tar from 'tar-stream';
import { type IndexEntry, renderApkIndex } from '../../apk/index.ts';
import { type ApkHead, readApkHead } from '../../apk/reader.ts';
import { verifySignatures } from '../../apk/signature.ts';
import { extractTar } from '../../archive/safe-extract.ts';
import { sealArgs } from '../../sandbox/bwrap-seal.ts';
import { BuilderError, errorMessage, PackageFormatError } from '../../errors.ts';
import { readRootFile, readRootFileOrNull, replaceFile } from '../accounts.ts';
import { untrustedHint } from './repository.ts';

export interface PackageToInstall {
  entry: IndexEntry;
  /** Local path of the .apk. */
  file: string;
  /** Repository label, for messages. */
  repository: string;
}

export interface InstallOptions {
  root: string;
  /** Dependencies first. */
  packages: readonly PackageToInstall[];
  keyring: ReadonlyMap<string, KeyObject>;
  ignoreSignatures: boolean;
  runScriptlets: boolean;
  log: (line: string) => void;
}

export interface InstallResult {
  packages: number;
  entries: number;
  /** Bytes of file content written. */
  bytes: number;
}

interface InstalledFile {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  sha1?: string;
}

interface InstalledDir {
  mode: number;
  uid: number;
  gid: number;
  files: InstalledFile[];
}

const HASH_ON_ENTRY = 'APK-TOOLS.checksum.SHA1';

function label(entry: IndexEntry): string {
  return `${entry.pkgname}-${entry.pkgver}`;
}

/** Refuses a package that is not the one the index described, or that the keyring does not vouch for. */
export function checkPackageHead(head: ApkHead, entry: IndexEntry, keyring: ReadonlyMap<string, KeyObject>, ignoreSignatures: boolean): void {
  const what = `package ${label(entry)} (${head.path})`;
  if (head.info.pkgname !== entry.pkgname || head.info.pkgver !== entry.pkgver) {
    throw new PackageFormatError(`${what}: the file holds ${head.info.pkgname}-${head.info.pkgver}, not what the index lists`);
  }
  if (head.checksum !== entry.checksum) {
    throw new PackageFormatError(`${what}: control checksum ${head.checksum} does not match the index (${entry.checksum}): the file changed after indexing`);
  }
  if (!ignoreSignatures) {
    try {
      verifySignatures(head.signatures, head.controlCompressed, keyring, what);
    } catch (err) {
      throw untrustedHint(err, what);
    }
    if (head.info.datahash === undefined) {
      throw new PackageFormatError(`${what}: no datahash in .PKGINFO, so its data cannot be verified (or pass --ignore-signatures)`);
    }
  }
}

function q1(hexSha1: string): string {
  return `Q1${Buffer.from(hexSha1, 'hex').toString('base64')}`;
}

/** The installed-database stanza of one package: its index fields, then its directories and files. */
export function installedStanza(entry: IndexEntry, replaces: string[], dirs: Map<string, InstalledDir>): string {
  const lines = [renderApkIndex([entry]).trimEnd()];
  if (replaces.length > 0) lines.push(`r:${replaces.join(' ')}`);
  for (const [dir, d] of dirs) {
    lines.push(`F:${dir}`);
    if (d.uid !== 0 || d.gid !== 0 || d.mode !== 0o755) lines.push(`M:${d.uid}:${d.gid}:${d.mode.toString(8)}`);
    for (const f of d.files) {
      lines.push(`R:${f.name}`);
      if (f.uid !== 0 || f.gid !== 0 || f.mode !== 0o644) lines.push(`a:${f.uid}:${f.gid}:${f.mode.toString(8)}`);
      if (f.sha1 && /^[0-9a-f]{40}$/.test(f.sha1)) lines.push(`Z:${q1(f.sha1)}`);
    }
  }
  return `${lines.join('\n')}\n\n`;
}

async function runScriptlet(root: string, head: ApkHead, name: string, log: (line: string) => void): Promise<void> {
  const file = head.controlFiles.find((f) => f.name === name);
  if (!file) return;
  const what = `${head.info.pkgname}-${head.info.pkgver}: ${name}`;
  log(`environment: running ${what}`);
  // Sealed like a build step run as root: no network, Docker's root capabilities, the seccomp filter.
  const sealed = sealArgs({
    label: what,
    runAs: { uid: 0, gid: 0 },
    network: false,
    capabilities: { add: [], drop: [] },
    newSession: true,
  });
  const result = await execa(
    'bwrap',
    [
      '--bind', root, '/',
      '--dev', '/dev',
      '--proc', '/proc',
      '--tmpfs', '/tmp',
      ...sealed.args,
      '--setenv', 'PATH', '/usr/sbin:/usr/bin:/sbin:/bin',
      '--chdir', '/',
      '--', '/bin/sh', '-c', file.content.toString('utf8'), name,
    ],
    { reject: false, all: true, stdio: ['ignore', 'pipe', 'pipe', sealed.seccomp ?? 'ignore'] },
  );
  if (result.exitCode !== 0) {
    throw new BuilderError(`scriptlet ${what} failed (exit ${result.exitCode ?? 'signal'})`, {
      details: String(result.all ?? '').split('\n').slice(-20),
    });
  }
}

/** Extracts one package's data stream, verifying its datahash on the way. Returns what it installed. */
async function extractData(
  root: string,
  head: ApkHead,
  entry: IndexEntry,
  ignoreSignatures: boolean,
): Promise<{ dirs: Map<string, InstalledDir>; entries: number; bytes: number }> {
  const what = `package ${label(entry)} (${head.path})`;
  const hash = createHash('sha256');
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  const dirs = new Map<string, InstalledDir>();
  const dirOf = (name: string): InstalledDir => {
    let d = dirs.get(name);
    if (!d) {
      d = { mode: 0o755, uid: 0, gid: 0, files: [] };
      dirs.set(name, d);
    }
    return d;
  };
  const source = createReadStream(head.path, { start: head.dataOffset, highWaterMark: 1024 * 1024 });
  const gunzip = createGunzip();
  // Settles once every byte of the file went through the hash (the tar may end before the gzip stream does).
  const compressed = pipeline(source, hasher, gunzip);
  const [extracted, fed] = await Promise.allSettled([
    extractTar(gunzip, {
      dest: root,
      where: what,
      preserveOwner: process.getuid?.() === 0,
      keepDirectorySymlinks: true,
      onEntry: (name: string, h: tar.Header) => {
        const mode = (h.mode ?? 0) & 0o7777;
        if (h.type === 'directory') {
          const d = dirOf(name);
          d.mode = mode;
          d.uid = h.uid ?? 0;
          d.gid = h.gid ?? 0;
          return;
        }
        const slash = name.lastIndexOf('/');
        const parent = slash < 0 ? '' : name.slice(0, slash);
        const pax = (h.pax ?? {}) as Record<string, string>;
        dirOf(parent).files.push({ name: name.slice(slash + 1), mode, uid: h.uid ?? 0, gid: h.gid ?? 0, sha1: pax[HASH_ON_ENTRY] });
      },
    }),
    compressed,
  ]);
  const failure = extracted.status === 'rejected' ? extracted.reason : fed.status === 'rejected' ? fed.reason : undefined;
  if (failure !== undefined || extracted.status !== 'fulfilled') {
    source.destroy();
    if (failure instanceof BuilderError) throw failure;
    throw new PackageFormatError(`${what}: corrupt data stream: ${errorMessage(failure)}`, { cause: failure });
  }
  const result = extracted.value;
  const dataHash = hash.digest('hex');
  const expected = head.info.datahash;
  if (expected !== undefined && dataHash !== expected && !ignoreSignatures) {
    throw new PackageFormatError(`${what}: BAD signature: data does not match its datahash (tampered after signing)`);
  }
  return { dirs, entries: result.entries, bytes: result.bytes };
}

export async function installPackages(options: InstallOptions): Promise<InstallResult> {
  const total: InstallResult = { packages: 0, entries: 0, bytes: 0 };
  const stanzas: string[] = [];
  for (const p of options.packages) {
    let head: ApkHead;
    try {
      head = await readApkHead(p.file);
    } catch (err) {
      throw new PackageFormatError(`package ${label(p.entry)} from ${p.repository}: ${errorMessage(err)}`, { cause: err });
    }
    checkPackageHead(head, p.entry, options.keyring, options.ignoreSignatures);
    if (options.runScriptlets) await runScriptlet(options.root, head, '.pre-install', options.log);
    const { dirs, entries, bytes } = await extractData(options.root, head, p.entry, options.ignoreSignatures);
    if (options.runScriptlets) await runScriptlet(options.root, head, '.post-install', options.log);
    stanzas.push(installedStanza(p.entry, head.info.replaces, dirs));
    total.packages++;
    total.entries += entries;
    total.bytes += bytes;
  }
  const existing = await readRootFile(options.root, 'lib/apk/db/installed');
  const prefix = existing === '' || existing.endsWith('\n\n') ? existing : `${existing.trimEnd()}\n\n`;
  await replaceFile(options.root, 'lib/apk/db/installed', prefix + stanzas.join(''));
  return total;
}

/** The files that make the root an apk root: world, repositories, trusted keys, arch. */
export async function writeApkConfig(
  root: string,
  config: { world: string[]; repositories: string[]; keyring: ReadonlyMap<string, KeyObject>; arch: string },
): Promise<void> {
  const existingWorld = (await readRootFile(root, 'etc/apk/world')).split('\n').filter((l) => l !== '');
  const world = [...new Set([...existingWorld, ...config.world])].sort();
  await replaceFile(root, 'etc/apk/world', world.length > 0 ? `${world.join('\n')}\n` : '');
  await replaceFile(root, 'etc/apk/repositories', config.repositories.length > 0 ? `${config.repositories.join('\n')}\n` : '');
  await replaceFile(root, 'etc/apk/arch', `${config.arch}\n`);
  for (const [name, key] of config.keyring) {
    if (name.includes('/') || name.startsWith('.')) continue;
    await replaceFile(root, `etc/apk/keys/${name}`, String(key.export({ type: 'spki', format: 'pem' })));
  }
  for (const file of ['lib/apk/db/triggers', 'lib/apk/db/lock']) {
    if ((await readRootFileOrNull(root, file)) === null) await replaceFile(root, file, '');
  }
}
