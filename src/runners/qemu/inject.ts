// Per-run injection: the initrd a VM boots is the cached base archive, then the kernel modules for this kernel
// (an uncompressed cpio fragment, cached per kernel), then a tiny archive with this run's keys and settings.
// The kernel unpacks concatenated archives in order, so nothing in the base is ever rewritten. The copy holds
// a private host key: it is created 0600 in a private directory and overwritten before it is removed.
import { createHash } from 'node:crypto';
import { constants as fsConstants, createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CpioWriter } from '../../initramfs/cpio.ts';
import { authorizedKeyLine, dropbearHostKey, type RunKeys } from './keys.ts';
import type { KernelSpec } from './kernel.ts';
import { installArtifact, sourceDigest, usableArtifact } from './seal.ts';

/** The build channel's forced command, in the base archive. */
export const BUILD_CHANNEL_COMMAND = '/usr/libexec/builder/build-channel';
const KEY_OPTIONS = 'no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty';

export interface RunSettings {
  runAs: { uid: number; gid: number };
  network: boolean;
  /** The steps' capabilities in setpriv's syntax (`-all,+net_raw`, `+all`); default none (`-all`). */
  capabilities?: string;
  /** The user-mode network's host address when not 10.0.2.2. */
  gateway?: string;
}

async function collect(write: (w: CpioWriter) => Promise<void>): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const writer = new CpioWriter(out);
  await write(writer);
  await writer.finish();
  out.end();
  return Buffer.concat(chunks);
}

/** The per-run archive: settings, host key, authorized keys. A few hundred bytes. */
export async function runArchive(keys: RunKeys, settings: RunSettings): Promise<Buffer> {
  const conf = [
    `BUILD_UID=${Math.trunc(settings.runAs.uid)}`,
    `BUILD_GID=${Math.trunc(settings.runAs.gid)}`,
    `NETWORK=${settings.network ? 1 : 0}`,
    ...(settings.capabilities && /^[-+a-z_,]+$/.test(settings.capabilities) ? [`CAPS=${settings.capabilities}`] : []),
    ...(settings.gateway && /^[\d.]+$/.test(settings.gateway) ? [`GATEWAY=${settings.gateway}`] : []),
    '',
  ].join('\n');
  const authorized = [
    authorizedKeyLine(keys.control, 'builder-control', KEY_OPTIONS),
    authorizedKeyLine(keys.build, 'builder-build', `command="${BUILD_CHANNEL_COMMAND}",${KEY_OPTIONS}`),
    '',
  ].join('\n');
  return collect(async (w) => {
    await w.file('etc/builder/run.conf', conf, { mode: 0o644 });
    await w.file('etc/dropbear/host_key', dropbearHostKey(keys.host), { mode: 0o600 });
    await w.file('root/.ssh/authorized_keys', authorized, { mode: 0o600 });
  });
}

/**
 * The modules fragment for a kernel (its files under lib/modules/<release>/ and the load list), written once
 * per kernel and module set into the cache and reused by every run.
 */
export async function moduleArchive(kernel: KernelSpec, modules: string[], artifactDir: string, log: (line: string) => void = () => undefined): Promise<string> {
  // Keyed by the modules' contents (remembered per inode), so a module rebuilt in place is never stale.
  const hash = createHash('sha256').update(`${kernel.release}\0`);
  const sizes: number[] = [];
  for (const m of modules) {
    const file = join(kernel.modulesDir, m);
    sizes.push((await stat(file)).size);
    hash.update(`${m}\0${await sourceDigest(artifactDir, file)}\0`);
  }
  const dir = join(artifactDir, 'modules');
  const path = join(dir, `${hash.digest('hex').slice(0, 32)}.cpio`);
  if (await usableArtifact(path, 'modules fragment', log)) return path;
  await mkdir(dir, { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  try {
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    const writing = pipeline(out, createWriteStream(temp));
    const w = new CpioWriter(out);
    await w.file('etc/builder/modules', `${modules.join('\n')}\n`, { mode: 0o644 });
    const dirs = new Set<string>();
    for (const [i, m] of modules.entries()) {
      const parts = `lib/modules/${kernel.release}/${m}`.split('/');
      for (let j = 2; j < parts.length; j++) {
        const d = parts.slice(0, j).join('/');
        if (dirs.has(d)) continue;
        dirs.add(d);
        await w.directory(d, { mode: 0o755 });
      }
      await w.fileFrom(parts.join('/'), join(kernel.modulesDir, m), sizes[i]!, { mode: 0o644 });
    }
    await w.finish();
    out.end();
    await writing;
    await installArtifact(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  return path;
}

/**
 * Writes the VM's initrd: base + zero padding to a 4-byte boundary (an uncompressed archive after a
 * compressed one must start aligned) + modules fragment + run archive.
 */
export async function writeRunInitrd(path: string, base: string, modulesFragment: string, run: Buffer): Promise<number> {
  const fh = await open(path, 'w', 0o600);
  try {
    await fh.chmod(0o600);
    return await fillRunInitrd(fh, base, modulesFragment, run);
  } finally {
    await fh.close();
  }
}

async function fillRunInitrd(fh: FileHandle, base: string, modulesFragment: string, run: Buffer): Promise<number> {
  const baseBytes = await readFile(base);
  const pad = Buffer.alloc((4 - (baseBytes.length % 4)) % 4);
  const modules = await readFile(modulesFragment);
  const all = Buffer.concat([baseBytes, pad, modules, run]);
  await fh.write(all, 0, all.length, 0);
  return all.length;
}

/** Linux O_TMPFILE (with O_DIRECTORY): a file in `dir` that has no name at all. */
const O_TMPFILE = 0o20000000 | 0o200000;

/**
 * The VM's initrd (it holds the run's private host key) as a file with no name: O_TMPFILE in the private temp
 * dir, which QEMU opens through our descriptor (`-initrd /proc/<pid>/fd/N`). Nothing named ever holds the key, and
 * the kernel frees the file when the last descriptor closes — even when builder is killed outright.
 * Filesystems without O_TMPFILE get a 0600 file unlinked as soon as it is open.
 */
export async function anonymousRunInitrd(dir: string, base: string, modulesFragment: string, run: Buffer): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(dir, O_TMPFILE | fsConstants.O_RDWR, 0o600);
  } catch (err) {
    if (!['EOPNOTSUPP', 'EISDIR', 'EINVAL', 'ENOENT'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    const named = join(dir, `initrd-${process.pid}-${Date.now()}`);
    fh = await open(named, 'wx+', 0o600);
    await rm(named, { force: true });
  }
  try {
    await fillRunInitrd(fh, base, modulesFragment, run);
    return fh;
  } catch (err) {
    await wipeAndClose(fh);
    throw err;
  }
}

/** Overwrites an open file that held key material with zeros, then closes it. */
export async function wipeAndClose(fh: FileHandle): Promise<void> {
  try {
    const { size } = await fh.stat();
    await fh.write(Buffer.alloc(size), 0, size, 0);
    await fh.datasync();
  } catch {
    // already closed or gone: nothing left to wipe
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Overwrites a file that held key material with zeros, then removes it. */
export async function destroyFile(path: string): Promise<void> {
  const st = await stat(path).catch(() => undefined);
  if (st?.isFile()) {
    await writeFile(path, Buffer.alloc(st.size)).catch(() => undefined);
  }
  await rm(path, { force: true });
}

/** A capability set (`CAP_*` names, or `ALL`) in setpriv's syntax, replacing whatever the process had. */
export function setprivCapabilities(set: readonly string[]): string {
  if (set.includes('ALL')) return '+all';
  return ['-all', ...set.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`)].join(',');
}
