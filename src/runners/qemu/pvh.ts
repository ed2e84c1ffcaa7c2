// PVH boot: a kernel built with CONFIG_PVH can be started from its uncompressed ELF image (vmlinux), which
// skips the real-mode setup and the decompression of the bzImage — about 0.3 s of every TCG boot here. The
// vmlinux is extracted once per kernel from the bzImage's payload and cached; when the kernel cannot be booted
// that way (no PVH, or a compression we do not unpack), the bzImage is used as is.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { KernelSpec } from './kernel.ts';
import { installArtifact, sourceDigest, usableArtifact } from './seal.ts';

const LZ4_LEGACY_MAGIC = 0x184c2102;
/** The legacy frame's fixed block size: no block decompresses to more. */
const LZ4_LEGACY_BLOCK = 8 * 1024 * 1024;

export class Lz4FormatError extends Error {
  override name = 'Lz4FormatError';
}

/** Decodes one LZ4 block (the raw sequence format) into `out`; returns the bytes written. */
export function decodeLz4Block(input: Buffer, out: Buffer): number {
  let ip = 0;
  let op = 0;
  const length = (start: number): [number, number] => {
    let n = start;
    let p = ip;
    if (n === 15) {
      let b: number;
      do {
        if (p >= input.length) throw new Lz4FormatError('truncated length');
        b = input[p++]!;
        n += b;
      } while (b === 255);
    }
    return [n, p];
  };
  while (ip < input.length) {
    const token = input[ip++]!;
    let literals: number;
    [literals, ip] = length(token >> 4);
    if (ip + literals > input.length || op + literals > out.length) throw new Lz4FormatError('literals overrun');
    input.copy(out, op, ip, ip + literals);
    ip += literals;
    op += literals;
    if (ip >= input.length) break; // the last sequence has literals only
    if (ip + 2 > input.length) throw new Lz4FormatError('truncated offset');
    const offset = input[ip]! | (input[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw new Lz4FormatError(`bad match offset ${offset}`);
    let match: number;
    [match, ip] = length(token & 15);
    match += 4;
    if (op + match > out.length) throw new Lz4FormatError('match overrun');
    let from = op - offset;
    if (offset >= match) {
      out.copy(out, op, from, from + match);
      op += match;
    } else {
      // Overlapping copy: the match repeats bytes it is itself producing.
      for (let i = 0; i < match; i++) out[op++] = out[from++]!;
    }
  }
  return op;
}

/** Streams a legacy-frame LZ4 file region (what the kernel's build uses) into `out`. */
async function decodeLz4Legacy(file: string, start: number, length: number, out: Writable): Promise<void> {
  const fh = await open(file, 'r');
  try {
    const read = async (pos: number, n: number): Promise<Buffer> => {
      const buf = Buffer.alloc(n);
      const { bytesRead } = await fh.read(buf, 0, n, pos);
      return buf.subarray(0, bytesRead);
    };
    let pos = start;
    const end = start + length;
    if ((await read(pos, 4)).readUInt32LE(0) !== LZ4_LEGACY_MAGIC) throw new Lz4FormatError('not a legacy LZ4 frame');
    pos += 4;
    const block = Buffer.alloc(LZ4_LEGACY_BLOCK);
    while (pos + 4 <= end) {
      const size = (await read(pos, 4)).readUInt32LE(0);
      if (size === LZ4_LEGACY_MAGIC) {
        pos += 4;
        continue;
      }
      // The kernel appends the uncompressed size after the last block; it reads as an impossible block size.
      if (size === 0 || pos + 4 + size > end) break;
      const produced = decodeLz4Block(await read(pos + 4, size), block);
      pos += 4 + size;
      if (!out.write(Buffer.from(block.subarray(0, produced)))) await new Promise((r) => out.once('drain', r));
    }
  } finally {
    await fh.close();
  }
}

/** The kernel's build configuration, when it can be found next to the image or its modules. */
async function kernelConfig(kernel: KernelSpec): Promise<string | undefined> {
  for (const candidate of [
    join(dirname(kernel.image), `config-${kernel.release}`),
    join('/boot', `config-${kernel.release}`),
    join(kernel.modulesDir, 'build/.config'),
  ]) {
    const text = await readFile(candidate, 'utf8').catch(() => undefined);
    if (text !== undefined) return text;
  }
  return undefined;
}

interface Payload {
  offset: number;
  length: number;
  format: 'gzip' | 'lz4' | 'other';
}

/** Where the compressed kernel sits inside the bzImage (boot protocol 2.08+). */
async function bzImagePayload(image: string): Promise<Payload | undefined> {
  const fh = await open(image, 'r');
  try {
    const header = Buffer.alloc(0x260);
    await fh.read(header, 0, header.length, 0);
    if (header.toString('latin1', 0x202, 0x206) !== 'HdrS' || header.readUInt16LE(0x206) < 0x208) return undefined;
    const setupSectors = header[0x1f1] || 4;
    const offset = (setupSectors + 1) * 512 + header.readUInt32LE(0x248);
    const length = header.readUInt32LE(0x24c);
    const magic = Buffer.alloc(4);
    await fh.read(magic, 0, 4, offset);
    const format = magic[0] === 0x1f && magic[1] === 0x8b ? 'gzip' : magic.readUInt32LE(0) === LZ4_LEGACY_MAGIC ? 'lz4' : 'other';
    return { offset, length, format };
  } finally {
    await fh.close();
  }
}

export type PvhOutcome = { path: string; extracted: boolean } | { path: null; reason: string };

/**
 * The cached vmlinux for this kernel, extracted when missing; or why the kernel is booted as a bzImage.
 */
export async function pvhKernel(kernel: KernelSpec, artifactDir: string, log: (line: string) => void = () => undefined): Promise<PvhOutcome> {
  const config = await kernelConfig(kernel);
  if (config === undefined) return { path: null, reason: 'no kernel config found to confirm CONFIG_PVH' };
  if (!/^CONFIG_PVH=y$/m.test(config)) return { path: null, reason: 'the kernel is built without CONFIG_PVH' };
  const payload = await bzImagePayload(kernel.image);
  if (payload === undefined) return { path: null, reason: 'the image has no payload header (boot protocol < 2.08)' };
  if (payload.format === 'other') return { path: null, reason: 'the kernel is compressed with a method not unpacked here (only gzip and lz4)' };

  // Keyed by the bzImage's content: a kernel replaced in place (even with its old mtime) is extracted again.
  const key = (await sourceDigest(artifactDir, kernel.image)).slice(0, 24);
  const dir = join(artifactDir, 'kernels');
  const path = join(dir, `vmlinux-${kernel.release}-${key}`);
  if (await usableArtifact(path, 'PVH kernel', log)) return { path, extracted: false };
  await mkdir(dir, { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  try {
    const out = createWriteStream(temp);
    if (payload.format === 'gzip') {
      await pipeline(createReadStream(kernel.image, { start: payload.offset, end: payload.offset + payload.length - 1 }), createGunzip(), out);
    } else {
      const done = new Promise<void>((resolve, reject) => {
        out.once('finish', resolve);
        out.once('error', reject);
      });
      await decodeLz4Legacy(kernel.image, payload.offset, payload.length, out);
      out.end();
      await done;
    }
    const magic = Buffer.alloc(4);
    const fh = await open(temp, 'r');
    await fh.read(magic, 0, 4, 0);
    await fh.close();
    if (magic.toString('latin1') !== '\x7fELF') return { path: null, reason: `the payload of ${basename(kernel.image)} is not an ELF image` };
    await installArtifact(temp, path);
  } finally {
    await rm(temp, { force: true });
  }
  return { path, extracted: true };
}
