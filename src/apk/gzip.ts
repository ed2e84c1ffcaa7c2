// Gzip members with byte-exact, reproducible framing, and the splitting of concatenated members.
//
// An .apk is three gzip members back to back, and apk tells them apart by where each deflate stream ends, so
// we frame every member ourselves: a fixed 10-byte header (no name, mtime 0, XFL 0, OS 3 = Unix), raw
// deflate, then CRC-32 and length. That keeps the bytes independent of the platform and of the zlib wrapper.
import { constants as zc, crc32, deflateRaw, deflateRawSync, inflateRawSync, type InflateRaw } from 'node:zlib';
import { PackageFormatError } from '../errors.ts';

export const GZIP_HEADER: Buffer = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);
export const DEFAULT_COMPRESSION_LEVEL = 6;
/** Deflate's window: the most history a chunk can refer back to. */
const WINDOW = 32 * 1024;

export function gzipTrailer(crc: number, length: number): Buffer {
  const t = Buffer.alloc(8);
  t.writeUInt32LE(crc >>> 0, 0);
  // ISIZE is the length modulo 2^32 (RFC 1952).
  t.writeUInt32LE(length % 0x1_0000_0000, 4);
  return t;
}

/** One complete gzip member for a small in-memory payload (signature and control streams, indexes). */
export function gzipMember(data: Buffer, level: number = DEFAULT_COMPRESSION_LEVEL): Buffer {
  return Buffer.concat([GZIP_HEADER, deflateRawSync(data, { level }), gzipTrailer(crc32(data), data.length)]);
}

function deflateChunk(input: Buffer, level: number, final: boolean, dictionary: Buffer | undefined): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    deflateRaw(
      input,
      {
        level,
        // A sync flush ends the chunk on a byte boundary without marking the last block, so the next chunk's
        // independently produced deflate data can follow it directly (what pigz does).
        finishFlush: final ? zc.Z_FINISH : zc.Z_SYNC_FLUSH,
        // Room for the whole output (deflate's worst case is input + ~0.03%), so each chunk is one threadpool pass.
        chunkSize: Math.max(64 * 1024, input.length + (input.length >> 7) + 1024),
        ...(dictionary ? { dictionary } : {}),
      },
      (err, out) => (err ? reject(err) : resolve(out)),
    );
  });
}

export interface ParallelGzipOptions {
  level?: number;
  /** Uncompressed bytes per independently compressed chunk. Fixed, so the output does not depend on timing. */
  chunkSize?: number;
  /** Chunks compressing at once on the libuv threadpool. Does not affect the output bytes. */
  concurrency?: number;
}

export const DEFAULT_GZIP_CHUNK_SIZE = 1024 * 1024;

/**
 * Writes ONE gzip member whose deflate stream is produced in fixed-size chunks compressed concurrently
 * (node's async zlib runs on the threadpool). Each chunk is primed with the previous chunk's last 32 KiB as
 * a preset dictionary, so compression barely suffers; chunk boundaries depend only on the byte count, so the
 * output is identical for identical input whatever the concurrency or scheduling.
 */
export class ParallelGzipWriter {
  private readonly sink: (data: Buffer) => Promise<void>;
  private readonly level: number;
  private readonly chunkSize: number;
  private readonly concurrency: number;
  private chunk: Buffer;
  private fill = 0;
  private crc = 0;
  private length = 0;
  private previousTail: Buffer | undefined;
  private readonly inFlight: Promise<Buffer>[] = [];
  private started = false;
  private finished = false;

  constructor(sink: (data: Buffer) => Promise<void>, opts: ParallelGzipOptions = {}) {
    this.sink = sink;
    this.level = opts.level ?? DEFAULT_COMPRESSION_LEVEL;
    this.chunkSize = Math.max(opts.chunkSize ?? DEFAULT_GZIP_CHUNK_SIZE, WINDOW);
    this.concurrency = Math.max(1, opts.concurrency ?? 2);
    this.chunk = Buffer.allocUnsafe(this.chunkSize);
  }

  async write(data: Buffer): Promise<void> {
    if (this.finished) throw new Error('ParallelGzipWriter: write after finish');
    let offset = 0;
    while (offset < data.length) {
      const n = Math.min(this.chunkSize - this.fill, data.length - offset);
      data.copy(this.chunk, this.fill, offset, offset + n);
      this.fill += n;
      offset += n;
      if (this.fill === this.chunkSize) await this.dispatch(false);
    }
  }

  async finish(): Promise<void> {
    if (this.finished) return;
    await this.dispatch(true);
    this.finished = true;
    while (this.inFlight.length > 0) await this.emitOldest();
    await this.sink(gzipTrailer(this.crc, this.length));
  }

  private async dispatch(final: boolean): Promise<void> {
    if (!this.started) {
      this.started = true;
      await this.sink(GZIP_HEADER);
    }
    // Wait for a slot first: more jobs than threads would only queue on the threadpool ahead of file reads.
    while (this.inFlight.length >= this.concurrency) await this.emitOldest();
    const input = this.chunk.subarray(0, this.fill);
    this.crc = crc32(input, this.crc);
    this.length += input.length;
    const job = deflateChunk(input, this.level, final, this.previousTail);
    // Awaited in order later; this only keeps a failure from being reported as unhandled meanwhile.
    job.catch(() => undefined);
    this.inFlight.push(job);
    // The dispatched buffer now belongs to its job (and is the next chunk's dictionary): start a fresh one.
    this.previousTail = input.length >= WINDOW ? input.subarray(input.length - WINDOW) : undefined;
    this.chunk = Buffer.allocUnsafe(this.chunkSize);
    this.fill = 0;
  }

  private async emitOldest(): Promise<void> {
    const job = this.inFlight.shift();
    if (job) await this.sink(await job);
  }
}

const FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;
const FRESERVED = 0xe0;

/**
 * Length of the gzip header at `offset`, or undefined when `buf` ends before the header does.
 * Throws PackageFormatError (prefixed with `where`) when the bytes are not a gzip header.
 */
export function gzipHeaderLength(buf: Buffer, offset: number, where: string): number | undefined {
  if (buf.length < offset + 10) {
    if (buf.length > offset && buf[offset] !== 0x1f) throw new PackageFormatError(`${where}: not a gzip stream`);
    return undefined;
  }
  if (buf[offset] !== 0x1f || buf[offset + 1] !== 0x8b) throw new PackageFormatError(`${where}: not a gzip stream`);
  if (buf[offset + 2] !== 8) throw new PackageFormatError(`${where}: gzip stream is not deflate-compressed`);
  const flags = buf[offset + 3] ?? 0;
  if (flags & FRESERVED) throw new PackageFormatError(`${where}: gzip header has reserved flags set`);
  let p = offset + 10;
  if (flags & FEXTRA) {
    if (buf.length < p + 2) return undefined;
    p += 2 + buf.readUInt16LE(p);
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (flags & flag) {
      const nul = buf.indexOf(0, p);
      if (nul < 0) return undefined;
      p = nul + 1;
    }
  }
  if (flags & FHCRC) p += 2;
  return buf.length < p ? undefined : p - offset;
}

export interface GzipMember {
  /** Offset of the member's first byte. */
  start: number;
  /** Offset just past the member's trailer. */
  end: number;
  content: Buffer;
}

/**
 * Decompresses the gzip member starting at `offset` of `buf`, finding where it ends. Returns undefined when
 * `buf` ends before the member does (read more and retry). CRC and length are checked.
 */
export function inflateGzipMember(buf: Buffer, offset: number, where: string, maxOutput: number): GzipMember | undefined {
  const headerLength = gzipHeaderLength(buf, offset, where);
  if (headerLength === undefined) return undefined;
  const deflateStart = offset + headerLength;
  let content: Buffer;
  let consumed: number;
  try {
    // With `info`, the engine reports how many input bytes the deflate stream used: that is the boundary.
    const result = inflateRawSync(buf.subarray(deflateStart), { info: true, maxOutputLength: maxOutput }) as unknown as {
      buffer: Buffer;
      engine: InflateRaw;
    };
    content = result.buffer;
    consumed = result.engine.bytesWritten;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'Z_BUF_ERROR') return undefined;
    if (e.code === 'ERR_BUFFER_TOO_LARGE') {
      throw new PackageFormatError(`${where}: gzip member decompresses to more than ${maxOutput} bytes`);
    }
    throw new PackageFormatError(`${where}: corrupt gzip stream (${e.message})`);
  }
  const trailer = deflateStart + consumed;
  if (buf.length < trailer + 8) return undefined;
  if (buf.readUInt32LE(trailer) !== crc32(content)) {
    throw new PackageFormatError(`${where}: gzip CRC mismatch`);
  }
  if (buf.readUInt32LE(trailer + 4) !== content.length % 0x1_0000_0000) {
    throw new PackageFormatError(`${where}: gzip length mismatch`);
  }
  return { start: offset, end: trailer + 8, content };
}
