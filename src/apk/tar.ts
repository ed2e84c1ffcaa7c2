// The tar dialect apk reads: POSIX ustar headers plus PAX extended headers (`x`), GNU long names (`L`/`K`)
// accepted on input. We encode headers ourselves rather than through tar-stream so every byte is under our
// control (APK-TOOLS.checksum.SHA1 records, no end-of-archive blocks in control streams, fixed padding).
import { PackageFormatError } from '../errors.ts';

export const TAR_BLOCK = 512;
export const TAR_END_OF_ARCHIVE: Buffer = Buffer.alloc(2 * TAR_BLOCK);
/** Largest size an 11-digit octal field holds; apk does not read the base-256 extension. */
export const TAR_MAX_SIZE = 0o77777777777;

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char-device' | 'block-device' | 'fifo';

export interface TarHeader {
  /** Path inside the archive; directories conventionally end in `/`. */
  name: string;
  type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number;
  /** Content bytes following the header (0 for everything but regular files). */
  size: number;
  /** Unix seconds. */
  mtime: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  linkname?: string;
  /** Extra PAX records, written in this order after any path/linkpath records. */
  pax?: [string, string][];
}

const TYPEFLAG: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  'char-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
};

function writeOctal(block: Buffer, offset: number, width: number, value: number, field: string): void {
  // width includes the terminating NUL: `0000644\0`, the form GNU tar and apk write.
  const digits = value.toString(8);
  if (!Number.isSafeInteger(value) || value < 0 || digits.length > width - 1) {
    throw new RangeError(`tar ${field} ${value} does not fit a ${width - 1}-digit octal field`);
  }
  block.write(digits.padStart(width - 1, '0'), offset, 'ascii');
  block[offset + width - 1] = 0;
}

function writeString(block: Buffer, offset: number, width: number, value: Buffer): void {
  value.copy(block, offset, 0, Math.min(width, value.length));
}

/** One PAX record: `<len> <key>=<value>\n`, where len counts the whole record including its own digits. */
export function paxRecord(key: string, value: string): Buffer {
  const body = Buffer.from(` ${key}=${value}\n`, 'utf8');
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'ascii'), body]);
}

/** Zero bytes that round an entry's content up to a whole block. */
export function tarPadding(size: number): Buffer {
  const rem = size % TAR_BLOCK;
  return rem === 0 ? Buffer.alloc(0) : Buffer.alloc(TAR_BLOCK - rem);
}

/** Splits a long path into ustar prefix/name at the leftmost `/` that makes both fit, if there is one. */
function splitUstarName(name: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (name.length <= 100) return { prefix: Buffer.alloc(0), name };
  for (let i = 0; i < name.length - 1 && i <= 155; i++) {
    if (name[i] === 0x2f && name.length - i - 1 <= 100) {
      return { prefix: name.subarray(0, i), name: name.subarray(i + 1) };
    }
  }
  return undefined;
}

function ustarBlock(fields: {
  name: Buffer;
  prefix: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: Buffer;
  uname: string;
  gname: string;
}): Buffer {
  const b = Buffer.alloc(TAR_BLOCK);
  writeString(b, 0, 100, fields.name);
  writeOctal(b, 100, 8, fields.mode & 0o7777, 'mode');
  writeOctal(b, 108, 8, fields.uid, 'uid');
  writeOctal(b, 116, 8, fields.gid, 'gid');
  writeOctal(b, 124, 12, fields.size, 'size');
  writeOctal(b, 136, 12, fields.mtime, 'mtime');
  b.write(fields.typeflag, 156, 'ascii');
  writeString(b, 157, 100, fields.linkname);
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  writeString(b, 265, 32, Buffer.from(fields.uname, 'utf8'));
  writeString(b, 297, 32, Buffer.from(fields.gname, 'utf8'));
  writeOctal(b, 329, 8, 0, 'devmajor');
  writeOctal(b, 337, 8, 0, 'devminor');
  writeString(b, 345, 155, fields.prefix);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += b[i] ?? 0;
  // `0012345\0`-style checksum field: six digits, NUL, space (as GNU tar writes it).
  b.write(sum.toString(8).padStart(6, '0'), 148, 'ascii');
  b[154] = 0;
  b[155] = 0x20;
  return b;
}

const PAX_HEADER_NAME = Buffer.from('PaxHeader', 'ascii');

/**
 * The header block(s) for one entry: a PAX extended header first when the entry has records or a path or
 * link target too long for ustar, then the ustar header. Content and padding are the caller's to write.
 */
export function encodeTarHeader(h: TarHeader): Buffer {
  if (h.size > TAR_MAX_SIZE) throw new RangeError(`tar entry ${h.name} is larger than ${TAR_MAX_SIZE} bytes`);
  const nameBytes = Buffer.from(h.name, 'utf8');
  const linkBytes = Buffer.from(h.linkname ?? '', 'utf8');
  const records: Buffer[] = [];
  let split = splitUstarName(nameBytes);
  if (!split) {
    records.push(paxRecord('path', h.name));
    split = { prefix: Buffer.alloc(0), name: nameBytes.subarray(0, 100) };
  }
  if (linkBytes.length > 100) records.push(paxRecord('linkpath', h.linkname ?? ''));
  for (const [key, value] of h.pax ?? []) records.push(paxRecord(key, value));

  const main = ustarBlock({
    name: split.name,
    prefix: split.prefix,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    size: h.size,
    mtime: h.mtime,
    typeflag: TYPEFLAG[h.type],
    linkname: linkBytes.subarray(0, 100),
    uname: h.uname,
    gname: h.gname,
  });
  if (records.length === 0) return main;
  const paxData = Buffer.concat(records);
  const paxHeader = ustarBlock({
    name: PAX_HEADER_NAME,
    prefix: Buffer.alloc(0),
    mode: 0o644,
    uid: h.uid,
    gid: h.gid,
    size: paxData.length,
    mtime: h.mtime,
    typeflag: 'x',
    linkname: Buffer.alloc(0),
    uname: h.uname,
    gname: h.gname,
  });
  return Buffer.concat([paxHeader, paxData, tarPadding(paxData.length), main]);
}

/** A complete in-memory entry: header, content, padding. */
export function encodeTarEntry(h: TarHeader, content: Buffer): Buffer {
  if (content.length !== h.size) throw new RangeError(`tar entry ${h.name}: size ${h.size} != content ${content.length}`);
  return Buffer.concat([encodeTarHeader(h), content, tarPadding(content.length)]);
}

// ---------------------------------------------------------------------------------------------------------
// Reading

export interface TarEntry {
  name: string;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  mtime: number;
  linkname: string | undefined;
  /** PAX records that applied to this entry (path/linkpath included). */
  pax: ReadonlyMap<string, string>;
  /** Offset of the entry's first header block (its PAX header if it has one) in the tar stream. */
  offset: number;
}

export interface TarReadEntry {
  entry: TarEntry;
  /** The entry's content; whatever is not consumed is skipped when the iteration resumes. */
  body: AsyncIterable<Buffer>;
}

export type EndOfArchivePolicy = 'forbidden' | 'optional' | 'required';

const TYPES_BY_FLAG: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
};

function cString(block: Buffer, offset: number, width: number): Buffer {
  const field = block.subarray(offset, offset + width);
  const nul = field.indexOf(0);
  return nul < 0 ? field : field.subarray(0, nul);
}

function parseNumber(block: Buffer, offset: number, width: number, what: string, where: string): number {
  const field = block.subarray(offset, offset + width);
  if ((field[0] ?? 0) & 0x80) {
    // GNU base-256: big-endian, first byte's top bit is the marker. Only non-negative values make sense here.
    if (field[0] !== 0x80) throw new PackageFormatError(`${where}: negative base-256 ${what}`);
    let v = 0;
    for (let i = 1; i < width; i++) v = v * 256 + (field[i] ?? 0);
    if (!Number.isSafeInteger(v)) throw new PackageFormatError(`${where}: ${what} out of range`);
    return v;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new PackageFormatError(`${where}: malformed ${what} field "${text}"`);
  return parseInt(text, 8);
}

interface RawHeader {
  typeflag: string;
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
}

function decodeHeader(block: Buffer, where: string): RawHeader {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  const stored = parseNumber(block, 148, 8, 'header checksum', where);
  if (stored !== unsigned && stored !== signed) {
    throw new PackageFormatError(`${where}: tar header checksum mismatch (not a tar stream, or corrupt)`);
  }
  const magic = block.subarray(257, 263).toString('latin1');
  let name = cString(block, 0, 100).toString('utf8');
  if (magic === 'ustar\0') {
    const prefix = cString(block, 345, 155).toString('utf8');
    if (prefix) name = `${prefix}/${name}`;
  }
  return {
    typeflag: String.fromCharCode(block[156] ?? 0),
    name,
    mode: parseNumber(block, 100, 8, 'mode', where) & 0o7777,
    uid: parseNumber(block, 108, 8, 'uid', where),
    gid: parseNumber(block, 116, 8, 'gid', where),
    size: parseNumber(block, 124, 12, 'size', where),
    mtime: parseNumber(block, 136, 12, 'mtime', where),
    linkname: cString(block, 157, 100).toString('utf8'),
    uname: cString(block, 265, 32).toString('utf8'),
    gname: cString(block, 297, 32).toString('utf8'),
  };
}

export function parsePaxRecords(data: Buffer, where: string): Map<string, string> {
  const records = new Map<string, string>();
  let p = 0;
  while (p < data.length) {
    if (data[p] === 0) break; // NUL padding after the last record
    const space = data.indexOf(0x20, p);
    const lenText = space < 0 ? '' : data.subarray(p, space).toString('latin1');
    const len = /^\d+$/.test(lenText) ? Number(lenText) : NaN;
    if (!(len > 0) || p + len > data.length || data[p + len - 1] !== 0x0a) {
      throw new PackageFormatError(`${where}: malformed PAX record`);
    }
    const record = data.subarray(space + 1, p + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq <= 0) throw new PackageFormatError(`${where}: malformed PAX record`);
    records.set(record.slice(0, eq), record.slice(eq + 1));
    p += len;
  }
  return records;
}

/** Pull-based reader over an async byte source, handing out exact-length pieces. */
class ByteReader {
  private readonly source: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  /** Bytes handed out so far. */
  offset = 0;

  constructor(source: AsyncIterable<Buffer>) {
    this.source = source[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.source.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    this.buf = this.buf.length === 0 ? next.value : Buffer.concat([this.buf, next.value]);
    return true;
  }

  /** Exactly n bytes; undefined at a clean end (no bytes left); `partial` when the source stops short. */
  async read(n: number): Promise<Buffer | undefined | 'partial'> {
    while (this.buf.length < n) {
      if (!(await this.more())) return this.buf.length === 0 ? undefined : 'partial';
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.offset += n;
    return out;
  }

  /** Up to n bytes as they arrive (never concatenating); empty at the end of the source. */
  async piece(n: number): Promise<Buffer> {
    if (this.buf.length === 0 && !(await this.more())) return Buffer.alloc(0);
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    this.offset += out.length;
    return out;
  }
}

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

class EntryBody implements AsyncIterable<Buffer> {
  remaining: number;
  private readonly reader: ByteReader;
  private readonly where: string;

  constructor(reader: ByteReader, size: number, where: string) {
    this.reader = reader;
    this.remaining = size;
    this.where = where;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    while (this.remaining > 0) yield await this.next();
  }

  private async next(): Promise<Buffer> {
    const piece = await this.reader.piece(this.remaining);
    if (piece.length === 0) throw new PackageFormatError(`${this.where}: tar stream ends inside an entry`);
    this.remaining -= piece.length;
    return piece;
  }

  async drain(): Promise<void> {
    while (this.remaining > 0) await this.next();
  }
}

/**
 * Parses a tar stream entry by entry. `where` names the archive (and member) in errors; entry errors add the
 * entry name. `endOfArchive` says whether the stream may, must, or must not carry the two zero blocks; after
 * them only zero bytes may follow.
 */
export async function* readTarStream(
  source: AsyncIterable<Buffer>,
  where: string,
  endOfArchive: EndOfArchivePolicy,
): AsyncGenerator<TarReadEntry> {
  const reader = new ByteReader(source);
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  let entryOffset: number | undefined;

  const readExact = async (n: number, what: string): Promise<Buffer> => {
    const b = await reader.read(n);
    if (b === undefined || b === 'partial') throw new PackageFormatError(`${where}: tar stream ends inside ${what}`);
    return b;
  };
  const skipPadding = async (size: number, what: string): Promise<void> => {
    const rem = size % TAR_BLOCK;
    if (rem !== 0) await readExact(TAR_BLOCK - rem, what);
  };

  for (;;) {
    const headerOffset = reader.offset;
    const block = await reader.read(TAR_BLOCK);
    if (block === undefined) {
      if (endOfArchive === 'required') throw new PackageFormatError(`${where}: tar stream has no end-of-archive blocks`);
      if (entryOffset !== undefined) throw new PackageFormatError(`${where}: tar stream ends after an extended header`);
      return;
    }
    if (block === 'partial') throw new PackageFormatError(`${where}: tar stream ends inside a header block`);
    if (isZeroBlock(block)) {
      if (endOfArchive === 'forbidden') {
        throw new PackageFormatError(`${where}: tar stream carries end-of-archive blocks (apk reports BAD archive)`);
      }
      for (;;) {
        const rest = await reader.piece(64 * 1024);
        if (rest.length === 0) break;
        if (!isZeroBlock(rest)) throw new PackageFormatError(`${where}: data after the tar end-of-archive marker`);
      }
      return;
    }
    const h = decodeHeader(block, where);
    entryOffset ??= headerOffset;
    if (h.typeflag === 'x' || h.typeflag === 'g' || h.typeflag === 'L' || h.typeflag === 'K') {
      if (h.size > 16 * 1024 * 1024) throw new PackageFormatError(`${where}: oversized extended header`);
      const data = await readExact(h.size, 'an extended header');
      await skipPadding(h.size, 'an extended header');
      if (h.typeflag === 'x') for (const [k, v] of parsePaxRecords(data, where)) pax.set(k, v);
      else if (h.typeflag === 'L') longName = cString(data, 0, data.length).toString('utf8');
      else if (h.typeflag === 'K') longLink = cString(data, 0, data.length).toString('utf8');
      continue;
    }
    const type = TYPES_BY_FLAG[h.typeflag];
    const name = pax.get('path') ?? longName ?? h.name;
    if (!type) throw new PackageFormatError(`${where}: ${name}: unsupported tar entry type '${h.typeflag}'`);
    const paxSize = pax.get('size');
    const size = paxSize !== undefined && /^\d+$/.test(paxSize) ? Number(paxSize) : h.size;
    const linkname = pax.get('linkpath') ?? longLink ?? (h.linkname === '' ? undefined : h.linkname);
    const entry: TarEntry = {
      name,
      type,
      mode: h.mode,
      uid: h.uid,
      gid: h.gid,
      uname: h.uname,
      gname: h.gname,
      size: type === 'file' ? size : 0,
      mtime: h.mtime,
      linkname: type === 'symlink' || type === 'hardlink' ? linkname : undefined,
      pax,
      offset: entryOffset,
    };
    const body = new EntryBody(reader, size, `${where}: ${name}`);
    yield { entry, body };
    await body.drain();
    await skipPadding(size, `entry ${name}`);
    pax = new Map();
    longName = undefined;
    longLink = undefined;
    entryOffset = undefined;
  }
}

export interface TarBufferEntry {
  entry: TarEntry;
  content: Buffer;
}

/** All entries of a small in-memory tar, with their contents. */
export async function readTarBuffer(data: Buffer, where: string, endOfArchive: EndOfArchivePolicy): Promise<TarBufferEntry[]> {
  const out: TarBufferEntry[] = [];
  const source = (async function* () {
    yield data;
  })();
  for await (const { entry, body } of readTarStream(source, where, endOfArchive)) {
    const parts: Buffer[] = [];
    for await (const piece of body) parts.push(piece);
    out.push({ entry, content: Buffer.concat(parts) });
  }
  return out;
}
