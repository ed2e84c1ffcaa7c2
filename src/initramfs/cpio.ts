// The "newc" cpio format the Linux kernel unpacks as an initramfs, written and read as streams.
// Layout per entry: a 110-byte ASCII header (magic 070701 and thirteen 8-digit hex fields), the NUL-terminated
// name padded so header+name is a multiple of 4, then the data padded to a multiple of 4. An entry named
// TRAILER!!! ends an archive; the kernel accepts several archives back to back (zero padding between them).
import { createReadStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { once } from 'node:events';
import { PackageFormatError } from '../errors.ts';

export const CPIO_TRAILER = 'TRAILER!!!';
const MAGIC = '070701';
const MAGIC_CRC = '070702';
const HEADER_SIZE = 110;
/** Names longer than this are corruption, not paths (PATH_MAX is 4096). */
const MAX_NAME = 4096;

const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

export type CpioEntryType = 'file' | 'directory' | 'symlink' | 'char' | 'block' | 'fifo';

/** Ownership and times shared by every kind of entry. */
export interface CpioOwnership {
  /** Permission bits (the type bits are added from the entry kind). */
  mode: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch; 0 by default so archives are reproducible. */
  mtime?: number;
}

export interface CpioHeader {
  name: string;
  type: CpioEntryType;
  /** Permission bits only. */
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  nlink: number;
  ino: number;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
}

/** A malformed archive, with the byte offset where it went wrong. */
export class CpioFormatError extends PackageFormatError {
  override name = 'CpioFormatError';
  readonly offset: number;
  constructor(where: string, offset: number, message: string) {
    super(`${where}: invalid cpio archive at byte ${offset}: ${message}`);
    this.offset = offset;
  }
}

function typeBits(type: CpioEntryType): number {
  switch (type) {
    case 'file':
      return S_IFREG;
    case 'directory':
      return S_IFDIR;
    case 'symlink':
      return S_IFLNK;
    case 'char':
      return S_IFCHR;
    case 'block':
      return S_IFBLK;
    case 'fifo':
      return S_IFIFO;
  }
}

function typeOf(mode: number): CpioEntryType | undefined {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'directory';
    case S_IFLNK:
      return 'symlink';
    case S_IFCHR:
      return 'char';
    case S_IFBLK:
      return 'block';
    case S_IFIFO:
      return 'fifo';
    default:
      return undefined;
  }
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

const ZEROS = Buffer.alloc(4);

function hex8(value: number, field: string, name: string): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`cpio: ${field} of "${name}" does not fit the newc format: ${value}`);
  }
  return value.toString(16).padStart(8, '0');
}

/** Header bytes plus the padded name for one entry. */
function encodeHeader(h: CpioHeader): Buffer {
  const nameBytes = Buffer.from(`${h.name}\0`, 'utf8');
  const fields = [
    h.ino,
    typeBits(h.type) | (h.mode & 0o7777),
    h.uid,
    h.gid,
    h.nlink,
    h.mtime,
    h.size,
    h.devMajor,
    h.devMinor,
    h.rdevMajor,
    h.rdevMinor,
    nameBytes.length,
    0,
  ];
  const names = ['ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize', 'devmajor', 'devminor', 'rdevmajor', 'rdevminor', 'namesize', 'check'];
  const text = MAGIC + fields.map((v, i) => hex8(v, names[i]!, h.name)).join('');
  return Buffer.concat([Buffer.from(text, 'ascii'), nameBytes, ZEROS.subarray(0, pad4(HEADER_SIZE + nameBytes.length))]);
}

/** Normalises an archive path: relative, no `.`/`..` components, no trailing slash. */
export function cpioName(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new RangeError(`cpio: refusing path with "..": ${path}`);
  if (parts.length === 0) throw new RangeError(`cpio: empty path`);
  return parts.join('/');
}

/**
 * Writes a newc archive to a stream, honouring backpressure. Entries are written in call order; the kernel
 * creates them in that order, so parents must come before their children.
 */
export class CpioWriter {
  readonly #out: Writable;
  #ino = 1;
  #written = 0;
  #finished = false;

  constructor(out: Writable) {
    this.#out = out;
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.#written;
  }

  async #write(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    this.#written += chunk.length;
    // events.once rejects when 'error' comes first and removes both listeners either way.
    if (!this.#out.write(chunk)) await once(this.#out, 'drain');
  }

  #header(name: string, type: CpioEntryType, own: CpioOwnership, size: number, rdev: [number, number] = [0, 0]): CpioHeader {
    if (this.#finished) throw new Error('cpio: entry added after the trailer');
    return {
      name: name === CPIO_TRAILER ? name : cpioName(name),
      type,
      mode: own.mode,
      uid: own.uid ?? 0,
      gid: own.gid ?? 0,
      mtime: own.mtime ?? 0,
      size,
      nlink: type === 'directory' ? 2 : 1,
      ino: name === CPIO_TRAILER ? 0 : this.#ino++,
      devMajor: 0,
      devMinor: 0,
      rdevMajor: rdev[0],
      rdevMinor: rdev[1],
    };
  }

  async directory(name: string, own: CpioOwnership): Promise<void> {
    await this.#write(encodeHeader(this.#header(name, 'directory', own, 0)));
  }

  async symlink(name: string, target: string, own: CpioOwnership = { mode: 0o777 }): Promise<void> {
    const data = Buffer.from(target, 'utf8');
    await this.#write(encodeHeader(this.#header(name, 'symlink', own, data.length)));
    await this.#write(data);
    await this.#write(ZEROS.subarray(0, pad4(data.length)));
  }

  async device(name: string, kind: 'char' | 'block', major: number, minor: number, own: CpioOwnership): Promise<void> {
    await this.#write(encodeHeader(this.#header(name, kind, own, 0, [major, minor])));
  }

  /** A file whose content is in memory. */
  async file(name: string, data: Buffer | string, own: CpioOwnership): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    await this.#write(encodeHeader(this.#header(name, 'file', own, bytes.length)));
    await this.#write(bytes);
    await this.#write(ZEROS.subarray(0, pad4(bytes.length)));
  }

  /** A file streamed from disk; `size` must be its exact length (a file changing underneath is an error). */
  async fileFrom(name: string, source: string, size: number, own: CpioOwnership): Promise<void> {
    await this.#write(encodeHeader(this.#header(name, 'file', own, size)));
    let copied = 0;
    for await (const chunk of createReadStream(source) as AsyncIterable<Buffer>) {
      copied += chunk.length;
      if (copied > size) throw new Error(`cpio: ${source} grew while being archived`);
      await this.#write(chunk);
    }
    if (copied !== size) throw new Error(`cpio: ${source} shrank while being archived (${copied} of ${size} bytes)`);
    await this.#write(ZEROS.subarray(0, pad4(size)));
  }

  /** Writes the trailer. The output stream is left open (more archives may follow). */
  async finish(): Promise<void> {
    await this.#write(encodeHeader(this.#header(CPIO_TRAILER, 'file', { mode: 0 }, 0)));
    this.#finished = true;
  }
}

/** An entry as read back; `body` yields its data and must be consumed or skipped before the next entry. */
export interface CpioEntry extends CpioHeader {
  /** For symlinks, the target. */
  linkTarget?: string;
  /** Reads the whole body into memory (for small entries). */
  buffer(): Promise<Buffer>;
  /** Streams the body. */
  body(): AsyncIterable<Buffer>;
}

/** Pulls exact byte counts out of an async chunk source. */
class ByteSource {
  readonly #iterator: AsyncIterator<Buffer>;
  #pending: Buffer = Buffer.alloc(0);
  #done = false;
  offset = 0;

  constructor(input: AsyncIterable<Buffer | string>) {
    const source = input[Symbol.asyncIterator]();
    this.#iterator = {
      next: async () => {
        const r = await source.next();
        if (r.done) return r;
        return { done: false, value: typeof r.value === 'string' ? Buffer.from(r.value) : r.value };
      },
    };
  }

  async #fill(n: number): Promise<boolean> {
    while (this.#pending.length < n && !this.#done) {
      const r = await this.#iterator.next();
      if (r.done) this.#done = true;
      else this.#pending = this.#pending.length === 0 ? r.value : Buffer.concat([this.#pending, r.value]);
    }
    return this.#pending.length >= n;
  }

  /** Exactly n bytes, or null at a clean end of input (nothing left). Throws on a partial read. */
  async read(n: number, where: string, what: string): Promise<Buffer | null> {
    if (!(await this.#fill(n))) {
      if (this.#pending.length === 0 && n > 0) return null;
      throw new CpioFormatError(where, this.offset, `truncated ${what} (${this.#pending.length} of ${n} bytes)`);
    }
    const out = this.#pending.subarray(0, n);
    this.#pending = this.#pending.subarray(n);
    this.offset += n;
    return out;
  }

  /** Up to n bytes as they arrive (at least 1), for streaming bodies. */
  async readSome(n: number, where: string): Promise<Buffer> {
    if (!(await this.#fill(1))) throw new CpioFormatError(where, this.offset, 'truncated file data');
    const take = Math.min(n, this.#pending.length);
    const out = this.#pending.subarray(0, take);
    this.#pending = this.#pending.subarray(take);
    this.offset += take;
    return out;
  }

  /** Skips zero bytes (padding between concatenated archives); false at the end of input. */
  async skipZeros(): Promise<boolean> {
    for (;;) {
      if (!(await this.#fill(1))) return false;
      let i = 0;
      while (i < this.#pending.length && this.#pending[i] === 0) i++;
      this.offset += i;
      this.#pending = this.#pending.subarray(i);
      if (this.#pending.length > 0) return true;
    }
  }
}

function parseHex(text: string, field: string, where: string, offset: number): number {
  if (!/^[0-9a-fA-F]{8}$/.test(text)) throw new CpioFormatError(where, offset, `field ${field} is not hexadecimal: ${JSON.stringify(text)}`);
  return Number.parseInt(text, 16);
}

export interface ReadCpioOptions {
  /** Named in errors. */
  where?: string;
  /** Keep reading archives after a trailer (as the kernel does); default true. */
  concatenated?: boolean;
}

/**
 * Reads a newc archive (or several back to back) as a stream of entries. Each entry's body must be read
 * (or left alone: it is skipped) before asking for the next entry.
 */
export async function* readCpio(input: AsyncIterable<Buffer | string>, options: ReadCpioOptions = {}): AsyncGenerator<CpioEntry> {
  const where = options.where ?? 'cpio';
  const concatenated = options.concatenated ?? true;
  const src = new ByteSource(input);
  let sawArchive = false;
  for (;;) {
    const start = src.offset;
    const head = await src.read(HEADER_SIZE, where, 'header');
    if (head === null) {
      if (!sawArchive) throw new CpioFormatError(where, start, 'empty input');
      throw new CpioFormatError(where, start, 'missing TRAILER!!! entry');
    }
    const text = head.toString('latin1');
    const magic = text.slice(0, 6);
    if (magic !== MAGIC && magic !== MAGIC_CRC) {
      throw new CpioFormatError(where, start, `bad magic ${JSON.stringify(magic)} (only the newc format is supported)`);
    }
    sawArchive = true;
    const field = (i: number, name: string) => parseHex(text.slice(6 + i * 8, 14 + i * 8), name, where, start);
    const ino = field(0, 'ino');
    const rawMode = field(1, 'mode');
    const uid = field(2, 'uid');
    const gid = field(3, 'gid');
    const nlink = field(4, 'nlink');
    const mtime = field(5, 'mtime');
    const size = field(6, 'filesize');
    const devMajor = field(7, 'devmajor');
    const devMinor = field(8, 'devminor');
    const rdevMajor = field(9, 'rdevmajor');
    const rdevMinor = field(10, 'rdevminor');
    const nameSize = field(11, 'namesize');
    field(12, 'check');
    if (nameSize < 1 || nameSize > MAX_NAME + 1) throw new CpioFormatError(where, start, `name size ${nameSize} out of range`);
    const nameBytes = (await src.read(nameSize, where, 'name'))!;
    if (nameBytes[nameSize - 1] !== 0) throw new CpioFormatError(where, start, 'name is not NUL-terminated');
    const name = nameBytes.subarray(0, nameSize - 1).toString('utf8');
    const namePad = pad4(HEADER_SIZE + nameSize);
    if (namePad > 0) await src.read(namePad, where, 'name padding');

    if (name === CPIO_TRAILER) {
      if (!concatenated) return;
      if (!(await src.skipZeros())) return;
      continue;
    }
    const type = typeOf(rawMode);
    if (type === undefined) throw new CpioFormatError(where, start, `entry "${name}" has unknown file type ${(rawMode & S_IFMT).toString(8)}`);
    if (type !== 'file' && type !== 'symlink' && size !== 0) {
      throw new CpioFormatError(where, start, `${type} entry "${name}" has ${size} bytes of data`);
    }

    let remaining = size;
    const body = async function* (): AsyncGenerator<Buffer> {
      while (remaining > 0) {
        const chunk = await src.readSome(Math.min(remaining, 1 << 16), where);
        remaining -= chunk.length;
        yield chunk;
      }
    };
    const buffer = async (): Promise<Buffer> => {
      const parts: Buffer[] = [];
      for await (const c of body()) parts.push(Buffer.from(c));
      return Buffer.concat(parts);
    };
    const entry: CpioEntry = {
      name,
      type,
      mode: rawMode & 0o7777,
      uid,
      gid,
      mtime,
      size,
      nlink,
      ino,
      devMajor,
      devMinor,
      rdevMajor,
      rdevMinor,
      buffer,
      body,
    };
    if (type === 'symlink') {
      if (size > MAX_NAME) throw new CpioFormatError(where, start, `symlink "${name}" target is ${size} bytes long`);
      entry.linkTarget = (await buffer()).toString('utf8');
    }
    yield entry;
    // Whatever the consumer did not read is skipped, then the data padding.
    while (remaining > 0) {
      const chunk = await src.readSome(Math.min(remaining, 1 << 16), where);
      remaining -= chunk.length;
    }
    const dataPad = pad4(size);
    if (dataPad > 0) await src.read(dataPad, where, 'data padding');
  }
}

/** The headers of every entry (bodies are skipped), for inspection and tests. */
export async function listCpio(input: AsyncIterable<Buffer | string>, options: ReadCpioOptions = {}): Promise<(CpioHeader & { linkTarget?: string })[]> {
  const out: (CpioHeader & { linkTarget?: string })[] = [];
  for await (const e of readCpio(input, options)) {
    const { buffer: _buffer, body: _body, ...header } = e;
    out.push(header);
  }
  return out;
}
