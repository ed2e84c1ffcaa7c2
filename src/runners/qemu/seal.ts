// The sealed store of VM artifacts: kernels extracted for PVH, base initramfs archives, module fragments,
// root disk images and the KVM probe verdict. It lives in a directory no sandbox binds (never under
// --cache-dir, which Bubblewrap shares read-write as /var/cache/melange), and every file in it carries a
// record of its content digest and of the inode it was written to. Before a file is booted its inode is
// compared with the record: any write or replacement changes ctime or the inode number (neither can be set
// back from user space), and then the content is hashed again; a different digest means the file was
// tampered with, and the caller rebuilds it and says so.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { type BigIntStats } from 'node:fs';
import { chmod, mkdir, open, readFile, realpath, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { BuilderError } from '../../errors.ts';
import { type BaseInitramfs, type BaseInitramfsOptions, ensureBaseInitramfs } from '../../initramfs/base.ts';

const RECORD_SUFFIX = '.seal.json';
/** Digest granularity: all-zero blocks (sparse holes of a disk image) are skipped, so a mostly empty image hashes at the speed of its data. */
const BLOCK = 64 * 1024;
const READ = 4 * 1024 * 1024;

/** `$XDG_STATE_HOME/builder/vm` (else `~/.local/state/builder/vm`): apart from every cache a sandbox sees. */
export function defaultArtifactDir(): string {
  return join(process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'builder', 'vm');
}

function inside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep));
}

async function canonical(path: string): Promise<string> {
  // The nearest existing ancestor decides where a not-yet-created directory will really be.
  let p = resolve(path);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(await realpath(p), ...rest.reverse());
    } catch {
      const parent = dirname(p);
      if (parent === p) return resolve(path);
      rest.push(p.slice(parent.length + (parent.endsWith(sep) ? 0 : 1)));
      p = parent;
    }
  }
}

/**
 * Refuses an artifact directory that a sandbox could reach through the melange cache (either one inside the
 * other), and creates it private (0700).
 */
export async function openArtifactDir(dir: string, sandboxWritable: string[]): Promise<void> {
  const real = await canonical(dir);
  for (const shared of sandboxWritable) {
    const other = await canonical(shared);
    if (inside(real, other) || inside(other, real)) {
      throw new BuilderError(
        `the VM artifact directory ${dir} overlaps ${shared}, which build sandboxes can write (as /var/cache/melange); choose a separate --vm-artifact-dir`,
      );
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** A user-given file (kernel, initramfs, modules) must not lie where a sandbox can write it. */
export async function refuseSandboxWritable(path: string, flag: string, sandboxWritable: string[]): Promise<void> {
  const real = await canonical(path);
  for (const shared of sandboxWritable) {
    if (inside(real, await canonical(shared))) {
      throw new BuilderError(`${flag}: ${path} is inside ${shared}, which build sandboxes can write (as /var/cache/melange); refusing to boot it`);
    }
  }
}

interface Fingerprint {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

interface SealRecord {
  format: 1;
  sha256: string;
  fingerprint: Fingerprint;
}

function fingerprintOf(st: BigIntStats): Fingerprint {
  return { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/** Byte ranges that hold data (from FIEMAP via filefrag), or undefined when the filesystem does not say. */
async function dataRanges(path: string, size: number): Promise<[number, number][] | undefined> {
  if (size < 64 * 1024 * 1024) return undefined;
  const r = await execa('filefrag', ['-e', '-b1024', path], { reject: false, env: { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } });
  if (r.failed || !/^\s*ext:/m.test(String(r.stdout))) return undefined;
  const ranges: [number, number][] = [];
  for (const line of String(r.stdout).split('\n')) {
    const m = /^\s*\d+:\s*(\d+)\.\.\s*(\d+):/.exec(line);
    if (!m) continue;
    const start = Math.floor((Number(m[1]) * 1024) / BLOCK) * BLOCK;
    const end = Math.min(size, Math.ceil(((Number(m[2]) + 1) * 1024) / BLOCK) * BLOCK);
    const last = ranges.at(-1);
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else ranges.push([start, end]);
  }
  return ranges;
}

/**
 * SHA-256 over the file's size and every non-zero 64 KiB block with its offset: the same digest whether the
 * holes are read or skipped, and any byte written anywhere changes it.
 */
export async function contentDigest(path: string, signal?: AbortSignal): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const hash = createHash('sha256').update(`size ${size}\n`);
    const ranges = (await dataRanges(path, size)) ?? [[0, size]];
    const buf = Buffer.alloc(READ);
    const zero = Buffer.alloc(BLOCK);
    for (const [start, end] of ranges) {
      for (let pos = start; pos < end; ) {
        signal?.throwIfAborted();
        const { bytesRead } = await fh.read(buf, 0, Math.min(READ, end - pos), pos);
        if (bytesRead === 0) break;
        for (let off = 0; off < bytesRead; off += BLOCK) {
          const block = buf.subarray(off, Math.min(off + BLOCK, bytesRead));
          if (block.equals(zero.subarray(0, block.length))) continue;
          hash.update(`@${pos + off} ${block.length}\n`).update(block);
        }
        pos += bytesRead;
      }
    }
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

function recordPath(path: string): string {
  return `${path}${RECORD_SUFFIX}`;
}

/**
 * Moves a finished temp file to its place in the store with its record written first, so that another
 * builder process never sees the artifact without one (and takes it for tampered).
 */
export async function installArtifact(temp: string, path: string, signal?: AbortSignal): Promise<void> {
  const sha256 = await contentDigest(temp, signal);
  await chmod(temp, 0o600);
  const write = async (fingerprint: Fingerprint): Promise<void> => {
    const recordTemp = `${recordPath(path)}.${process.pid}.tmp`;
    await writeFile(recordTemp, JSON.stringify({ format: 1, sha256, fingerprint } satisfies SealRecord), { mode: 0o600 });
    await rename(recordTemp, recordPath(path));
  };
  await write(fingerprintOf(await stat(temp, { bigint: true })));
  await rename(temp, path);
  // The rename changed the inode's ctime: record it as it now is (a reader in between rehashes and agrees).
  await write(fingerprintOf(await stat(path, { bigint: true })));
}

/** Records a file just written into the store (call after its final rename). */
export async function sealArtifact(path: string, signal?: AbortSignal): Promise<void> {
  const sha256 = await contentDigest(path, signal);
  await chmod(path, 0o600);
  const record: SealRecord = { format: 1, sha256, fingerprint: fingerprintOf(await stat(path, { bigint: true })) };
  const temp = `${recordPath(path)}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(record), { mode: 0o600 });
  await rename(temp, recordPath(path));
}

async function readRecord(path: string): Promise<SealRecord | undefined> {
  try {
    const r = JSON.parse(await readFile(recordPath(path), 'utf8')) as SealRecord;
    return r.format === 1 && typeof r.sha256 === 'string' && typeof r.fingerprint === 'object' ? r : undefined;
  } catch {
    return undefined;
  }
}

export type SealVerdict = { state: 'ok' } | { state: 'missing' } | { state: 'tampered'; reason: string };

/** Whether a stored file is exactly what was recorded (hashing it again only when its inode changed). */
export async function verifyArtifact(path: string, signal?: AbortSignal): Promise<SealVerdict> {
  const st = await stat(path, { bigint: true }).catch(() => undefined);
  if (!st) return { state: 'missing' };
  if (!st.isFile()) return { state: 'tampered', reason: 'it is not a regular file' };
  const record = await readRecord(path);
  if (!record) return { state: 'tampered', reason: 'it has no digest record' };
  if (sameFingerprint(record.fingerprint, fingerprintOf(st))) return { state: 'ok' };
  const sha256 = await contentDigest(path, signal);
  if (sha256 !== record.sha256) return { state: 'tampered', reason: `its SHA-256 is ${sha256.slice(0, 16)}…, recorded ${record.sha256.slice(0, 16)}…` };
  // Same content, touched inode (e.g. copied back by a backup tool): re-record.
  await sealArtifact(path, signal);
  return { state: 'ok' };
}

/**
 * The artifact at `path` when it is present and genuine; when it was tampered with, it is removed (so the
 * caller rebuilds it) and the log says so. Returns whether it can be used as is.
 */
export async function usableArtifact(path: string, what: string, log: (line: string) => void, signal?: AbortSignal): Promise<boolean> {
  const verdict = await verifyArtifact(path, signal);
  if (verdict.state === 'ok') return true;
  if (verdict.state === 'tampered') {
    log(`${what} ${path} does not match its record (${verdict.reason}); rebuilding it`);
    await rm(path, { force: true });
    await rm(recordPath(path), { force: true });
  }
  return false;
}

/** Marks a use (the record's mtime, so the artifact's own inode stays as recorded), for least-recently-used pruning. */
export async function touchArtifact(path: string): Promise<void> {
  const now = new Date();
  await utimes(recordPath(path), now, now).catch(() => undefined);
}

/** When the artifact was last used (its record's mtime), or undefined. */
export async function lastUse(path: string): Promise<number | undefined> {
  return (await stat(recordPath(path)).catch(() => undefined))?.mtimeMs;
}

export async function removeArtifact(path: string): Promise<void> {
  await rm(path, { force: true });
  await rm(recordPath(path), { force: true });
}

/**
 * A digest of a file outside the store (a user's kernel or module), remembered by inode so that an unchanged
 * file is not hashed on every run, and hashed again whenever its inode changed (a new build, `touch -d`).
 */
export async function sourceDigest(artifactDir: string, path: string, signal?: AbortSignal): Promise<string> {
  const st = await stat(path, { bigint: true });
  const fp = fingerprintOf(st);
  const memo = join(artifactDir, 'sources', `${createHash('sha256').update(resolve(path)).digest('hex').slice(0, 32)}.json`);
  try {
    const r = JSON.parse(await readFile(memo, 'utf8')) as { fingerprint: Fingerprint; sha256: string };
    if (sameFingerprint(r.fingerprint, fp)) return r.sha256;
  } catch {
    // not known yet
  }
  const sha256 = await contentDigest(path, signal);
  await mkdir(dirname(memo), { recursive: true, mode: 0o700 });
  const temp = `${memo}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify({ fingerprint: fp, sha256 }), { mode: 0o600 });
  await rename(temp, memo);
  return sha256;
}

/** The base archive in the store (`options.cacheDir` is the artifact dir): verified, rebuilt (and said so) when it does not match its record. */
export async function ensureSealedBaseInitramfs(options: BaseInitramfsOptions): Promise<BaseInitramfs> {
  const log = options.log ?? (() => undefined);
  let base = await ensureBaseInitramfs(options);
  if (base.cached && !(await usableArtifact(base.path, 'base initramfs', log, options.signal))) base = await ensureBaseInitramfs(options);
  if (!base.cached) {
    await sealArtifact(base.path, options.signal);
    log(`base initramfs built: ${base.path}`);
  }
  return base;
}
