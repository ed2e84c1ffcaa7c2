// A minimal ELF reader: only the headers dependency scanning, linting and initramfs assembly need.
// It reads through a file handle at the offsets the headers name, so a 200 MB library costs a handful of
// small reads, never the whole file. Both classes (32/64-bit) and both byte orders are handled.
import { open, type FileHandle } from 'node:fs/promises';
import { PackageFormatError } from '../errors.ts';

export type ElfBits = 32 | 64;
export type ElfEndian = 'little' | 'big';
export type ElfType = 'none' | 'relocatable' | 'executable' | 'shared' | 'core' | 'unknown';

export interface ElfSection {
  name: string;
  /** sh_type (SHT_*). */
  type: number;
  size: number;
}

export interface ElfInfo {
  /** The path (or name) the information was read from. */
  file: string;
  bits: ElfBits;
  endian: ElfEndian;
  /** e_ident[EI_OSABI]. */
  osAbi: number;
  type: ElfType;
  /** e_type as found (type is 'unknown' for OS/processor-specific values). */
  typeCode: number;
  /** e_machine (EM_*). */
  machine: number;
  /** A conventional name for `machine` (`x86_64`, `aarch64`, `i386`, ...) or `EM_<n>`. */
  machineName: string;
  /** e_flags (ABI details such as ARM float ABI or MIPS variant). */
  flags: number;
  /** PT_INTERP: the program interpreter, e.g. `/lib/ld-musl-x86_64.so.1`. */
  interpreter: string | null;
  /** Whether the file has a dynamic section (PT_DYNAMIC or SHT_DYNAMIC). */
  dynamic: boolean;
  /** DT_NEEDED entries, in file order. */
  needed: string[];
  soname: string | null;
  /** DT_RUNPATH split on `:`. */
  runpath: string[];
  /** DT_RPATH split on `:`. */
  rpath: string[];
  /** DT_FLAGS_1 carries DF_1_PIE: a position-independent executable rather than a library. */
  pie: boolean;
  /** Section headers with names; only when asked for (`{ sections: true }`), else null. */
  sections: ElfSection[] | null;
}

export interface ReadElfOptions {
  /** Also read the section header names (one or two more reads). */
  sections?: boolean;
}

/** A file that starts like an ELF file but whose headers are truncated or inconsistent. */
export class ElfFormatError extends PackageFormatError {
  override name = 'ElfFormatError';
  readonly file: string;
  constructor(file: string, message: string) {
    super(`${file}: not a valid ELF file: ${message}`);
    this.file = file;
  }
}

const MAGIC = 0x7f454c46; // "\x7fELF"

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;

const SHT_DYNAMIC = 6;
const SHT_NOBITS = 8;

const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_SONAME = 14n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;
const DT_FLAGS_1 = 0x6ffffffbn;
const DF_1_PIE = 0x08000000n;

const PN_XNUM = 0xffff;
const SHN_XINDEX = 0xffff;

// The first read covers the ELF header and, for nearly every real file, the program headers too.
const HEAD_SIZE = 4096;
// A string longer than this in a dynamic string table is treated as corruption.
const MAX_STRING = 1 << 16;
// Beyond this many entries a header table is treated as corruption rather than allocated.
const MAX_TABLE_ENTRIES = 1 << 20;

const TYPES: readonly ElfType[] = ['none', 'relocatable', 'executable', 'shared', 'core'];

const MACHINES: ReadonlyMap<number, string> = new Map([
  [2, 'sparc'],
  [3, 'i386'],
  [4, 'm68k'],
  [8, 'mips'],
  [15, 'parisc'],
  [20, 'ppc'],
  [21, 'ppc64'],
  [22, 's390'],
  [40, 'arm'],
  [41, 'alpha'],
  [42, 'sh'],
  [43, 'sparc64'],
  [50, 'ia64'],
  [62, 'x86_64'],
  [183, 'aarch64'],
  [243, 'riscv'],
  [247, 'bpf'],
  [258, 'loongarch'],
]);

export function machineName(machine: number): string {
  return MACHINES.get(machine) ?? `EM_${machine}`;
}

/** True when the file is a regular file starting with the ELF magic. Reads 4 bytes. */
export async function isElf(path: string): Promise<boolean> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (isErrno(err, 'EISDIR')) return false;
    throw err;
  }
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    return bytesRead === 4 && buf.readUInt32BE(0) === MAGIC;
  } catch (err) {
    if (isErrno(err, 'EISDIR')) return false;
    throw err;
  } finally {
    await fh.close();
  }
}

/**
 * The headers of an ELF file: null when the file is not ELF (no magic), ElfFormatError when it is ELF but
 * truncated or corrupt. I/O errors (unreadable, missing) propagate as they are.
 */
export async function readElf(path: string, options: ReadElfOptions = {}): Promise<ElfInfo | null> {
  const fh = await open(path, 'r');
  try {
    return await readElfFromHandle(fh, path, options);
  } finally {
    await fh.close();
  }
}

/** As readElf, on an already open handle; `name` is used in errors and as ElfInfo.file. */
export async function readElfFromHandle(
  fh: FileHandle,
  name: string,
  options: ReadElfOptions = {},
): Promise<ElfInfo | null> {
  const { size } = await fh.stat();
  const headLen = Math.min(HEAD_SIZE, size);
  const head = Buffer.alloc(headLen);
  const { bytesRead } = headLen > 0 ? await fh.read(head, 0, headLen, 0) : { bytesRead: 0 };
  if (bytesRead < 4 || head.readUInt32BE(0) !== MAGIC) return null;
  const file = new ElfFile(fh, name, size, head.subarray(0, bytesRead));
  return file.parse(options.sections === true);
}

interface Header {
  bits: ElfBits;
  le: boolean;
  osAbi: number;
  typeCode: number;
  machine: number;
  flags: number;
  phoff: number;
  shoff: number;
  phentsize: number;
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

interface ProgramHeader {
  type: number;
  offset: number;
  vaddr: bigint;
  filesz: number;
}

interface SectionHeader {
  nameOffset: number;
  type: number;
  offset: number;
  size: number;
  link: number;
}

interface DynamicEntries {
  needed: bigint[];
  soname: bigint | null;
  runpath: bigint | null;
  rpath: bigint | null;
  strtab: bigint | null;
  strsz: bigint | null;
  flags1: bigint;
}

class ElfFile {
  private readonly fh: FileHandle;
  private readonly name: string;
  private readonly size: number;
  private readonly head: Buffer;
  private le = true;
  private bits: ElfBits = 64;

  constructor(fh: FileHandle, name: string, size: number, head: Buffer) {
    this.fh = fh;
    this.name = name;
    this.size = size;
    this.head = head;
  }

  private fail(message: string): never {
    throw new ElfFormatError(this.name, message);
  }

  /** Bytes [offset, offset+length) of the file; a read past the end is a truncated file. */
  private async read(offset: number, length: number, what: string): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      this.fail(`${what} (${length} bytes at offset ${offset}) lies beyond the end of the file (${this.size} bytes)`);
    }
    if (offset + length <= this.head.length) return this.head.subarray(offset, offset + length);
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) this.fail(`${what} is truncated (file shrank while being read)`);
      done += bytesRead;
    }
    return buf;
  }

  private u16(b: Buffer, at: number): number {
    return this.le ? b.readUInt16LE(at) : b.readUInt16BE(at);
  }

  private u32(b: Buffer, at: number): number {
    return this.le ? b.readUInt32LE(at) : b.readUInt32BE(at);
  }

  private u64(b: Buffer, at: number): bigint {
    return this.le ? b.readBigUInt64LE(at) : b.readBigUInt64BE(at);
  }

  /** A word-sized field (u32 or u64 by class) as a bigint. */
  private word(b: Buffer, at: number): bigint {
    return this.bits === 64 ? this.u64(b, at) : BigInt(this.u32(b, at));
  }

  /** A file offset or size: must fit a safe integer (anything larger cannot be inside the file anyway). */
  private offset(b: Buffer, at: number, what: string): number {
    const v = this.word(b, at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} 0x${v.toString(16)} is out of range`);
    return Number(v);
  }

  private parseHeader(): Header {
    const h = this.head;
    const cls = h[4];
    const data = h[5];
    if (cls !== 1 && cls !== 2) this.fail(`unknown ELF class ${String(cls)}`);
    if (data !== 1 && data !== 2) this.fail(`unknown data encoding ${String(data)}`);
    this.bits = cls === 1 ? 32 : 64;
    this.le = data === 1;
    const ehsize = this.bits === 64 ? 64 : 52;
    if (h.length < ehsize) this.fail(`truncated ELF header (${h.length} of ${ehsize} bytes)`);
    const is64 = this.bits === 64;
    return {
      bits: this.bits,
      le: this.le,
      osAbi: h[7] ?? 0,
      typeCode: this.u16(h, 16),
      machine: this.u16(h, 18),
      flags: this.u32(h, is64 ? 48 : 36),
      phoff: this.offset(h, is64 ? 32 : 28, 'e_phoff'),
      shoff: this.offset(h, is64 ? 40 : 32, 'e_shoff'),
      phentsize: this.u16(h, is64 ? 54 : 42),
      phnum: this.u16(h, is64 ? 56 : 44),
      shentsize: this.u16(h, is64 ? 58 : 46),
      shnum: this.u16(h, is64 ? 60 : 48),
      shstrndx: this.u16(h, is64 ? 62 : 50),
    };
  }

  async parse(wantSections: boolean): Promise<ElfInfo> {
    const hdr = this.parseHeader();
    // Extended numbering: counts that overflow 16 bits live in section header 0.
    let section0: (SectionHeader & { infoCount: number }) | null = null;
    const needSection0 =
      hdr.shoff !== 0 && (hdr.phnum === PN_XNUM || hdr.shnum === 0 || hdr.shstrndx === SHN_XINDEX);
    if (needSection0) section0 = await this.readSection0(hdr);
    const phnum = hdr.phnum === PN_XNUM && section0 ? section0.infoCount : hdr.phnum;
    const shnum = hdr.shnum === 0 && hdr.shoff !== 0 && section0 ? section0.size : hdr.shnum;
    const shstrndx = hdr.shstrndx === SHN_XINDEX && section0 ? section0.link : hdr.shstrndx;

    const phdrs = phnum > 0 && hdr.phoff !== 0 ? await this.readProgramHeaders(hdr, phnum) : [];
    let interpreter: string | null = null;
    const interp = phdrs.find((p) => p.type === PT_INTERP);
    if (interp) {
      const raw = await this.read(interp.offset, interp.filesz, 'PT_INTERP');
      const nul = raw.indexOf(0);
      interpreter = raw.toString('latin1', 0, nul < 0 ? raw.length : nul);
    }

    // Section headers are only needed when the caller wants names, or when the program headers cannot
    // locate the dynamic string table (no PT_DYNAMIC, or DT_STRTAB outside every PT_LOAD).
    let shdrsCache: SectionHeader[] | null = null;
    const shdrs = async (): Promise<SectionHeader[]> => {
      shdrsCache ??= shnum > 0 && hdr.shoff !== 0 ? await this.readSectionHeaders(hdr, shnum) : [];
      return shdrsCache;
    };

    let dyn: DynamicEntries | null = null;
    let strtab: { offset: number; size: number } | null = null;
    const ptDynamic = phdrs.find((p) => p.type === PT_DYNAMIC);
    if (ptDynamic && ptDynamic.filesz > 0) {
      dyn = await this.readDynamic(ptDynamic.offset, ptDynamic.filesz);
      strtab = this.mapStrtab(dyn, phdrs);
    }
    if (!dyn || (!strtab && hasStrings(dyn))) {
      const sections = await shdrs();
      const dynSection = sections.find((s) => s.type === SHT_DYNAMIC);
      if (dynSection && dynSection.size > 0) {
        dyn ??= await this.readDynamic(dynSection.offset, dynSection.size);
        const link = sections[dynSection.link];
        if (link && link.type !== SHT_NOBITS) strtab = { offset: link.offset, size: link.size };
      }
    }
    if (dyn && !strtab && hasStrings(dyn)) this.fail('the dynamic string table cannot be located');

    const strings = dyn && strtab ? await this.readStrings(strtab, dyn) : new Map<bigint, string>();
    const str = (off: bigint | null): string | null => (off === null ? null : (strings.get(off) ?? null));
    const splitPath = (off: bigint | null): string[] => {
      const s = str(off);
      return s === null || s === '' ? [] : s.split(':');
    };

    let sections: ElfSection[] | null = null;
    if (wantSections) sections = await this.sectionNames(await shdrs(), shstrndx);

    return {
      file: this.name,
      bits: hdr.bits,
      endian: hdr.le ? 'little' : 'big',
      osAbi: hdr.osAbi,
      type: TYPES[hdr.typeCode] ?? 'unknown',
      typeCode: hdr.typeCode,
      machine: hdr.machine,
      machineName: machineName(hdr.machine),
      flags: hdr.flags,
      interpreter,
      dynamic: dyn !== null,
      needed: dyn ? dyn.needed.map((o) => str(o) ?? '') : [],
      soname: dyn ? str(dyn.soname) : null,
      runpath: dyn ? splitPath(dyn.runpath) : [],
      rpath: dyn ? splitPath(dyn.rpath) : [],
      pie: dyn !== null && (dyn.flags1 & DF_1_PIE) !== 0n,
      sections,
    };
  }

  private async readSection0(hdr: Header): Promise<SectionHeader & { infoCount: number }> {
    const entsize = this.bits === 64 ? 64 : 40;
    if (hdr.shentsize < entsize) this.fail(`section header size ${hdr.shentsize} is too small`);
    const b = await this.read(hdr.shoff, entsize, 'section header 0');
    const s = this.parseSection(b, 0);
    return { ...s, infoCount: this.u32(b, this.bits === 64 ? 44 : 28) };
  }

  private async readProgramHeaders(hdr: Header, count: number): Promise<ProgramHeader[]> {
    const entsize = this.bits === 64 ? 56 : 32;
    if (hdr.phentsize < entsize) this.fail(`program header size ${hdr.phentsize} is too small`);
    if (count > MAX_TABLE_ENTRIES) this.fail(`implausible program header count ${count}`);
    const b = await this.read(hdr.phoff, hdr.phentsize * count, 'program header table');
    const out: ProgramHeader[] = [];
    for (let i = 0; i < count; i++) {
      const at = i * hdr.phentsize;
      const is64 = this.bits === 64;
      out.push({
        type: this.u32(b, at),
        offset: this.offset(b, at + (is64 ? 8 : 4), `program header ${i} p_offset`),
        vaddr: this.word(b, at + (is64 ? 16 : 8)),
        filesz: this.offset(b, at + (is64 ? 32 : 16), `program header ${i} p_filesz`),
      });
    }
    return out;
  }

  private parseSection(b: Buffer, at: number): SectionHeader {
    const is64 = this.bits === 64;
    return {
      nameOffset: this.u32(b, at),
      type: this.u32(b, at + 4),
      offset: this.offset(b, at + (is64 ? 24 : 16), 'sh_offset'),
      size: this.offset(b, at + (is64 ? 32 : 20), 'sh_size'),
      link: this.u32(b, at + (is64 ? 40 : 24)),
    };
  }

  private async readSectionHeaders(hdr: Header, count: number): Promise<SectionHeader[]> {
    const entsize = this.bits === 64 ? 64 : 40;
    if (hdr.shentsize < entsize) this.fail(`section header size ${hdr.shentsize} is too small`);
    if (count > MAX_TABLE_ENTRIES) this.fail(`implausible section header count ${count}`);
    const b = await this.read(hdr.shoff, hdr.shentsize * count, 'section header table');
    const out: SectionHeader[] = [];
    for (let i = 0; i < count; i++) out.push(this.parseSection(b, i * hdr.shentsize));
    return out;
  }

  private async readDynamic(offset: number, size: number): Promise<DynamicEntries> {
    const entsize = this.bits === 64 ? 16 : 8;
    const count = Math.floor(size / entsize);
    if (count > MAX_TABLE_ENTRIES) this.fail(`implausible dynamic section size ${size}`);
    const b = await this.read(offset, count * entsize, 'dynamic section');
    const dyn: DynamicEntries = {
      needed: [],
      soname: null,
      runpath: null,
      rpath: null,
      strtab: null,
      strsz: null,
      flags1: 0n,
    };
    for (let i = 0; i < count; i++) {
      const at = i * entsize;
      const tag = this.bits === 64 ? BigInt.asIntN(64, this.u64(b, at)) : BigInt(this.le ? b.readInt32LE(at) : b.readInt32BE(at));
      const val = this.word(b, at + entsize / 2);
      if (tag === DT_NULL) break;
      if (tag === DT_NEEDED) dyn.needed.push(val);
      else if (tag === DT_SONAME) dyn.soname = val;
      else if (tag === DT_RUNPATH) dyn.runpath = val;
      else if (tag === DT_RPATH) dyn.rpath = val;
      else if (tag === DT_STRTAB) dyn.strtab = val;
      else if (tag === DT_STRSZ) dyn.strsz = val;
      else if (tag === DT_FLAGS_1) dyn.flags1 = val;
    }
    return dyn;
  }

  /** DT_STRTAB is a virtual address: the PT_LOAD segment containing it gives its file offset. */
  private mapStrtab(dyn: DynamicEntries, phdrs: ProgramHeader[]): { offset: number; size: number } | null {
    if (dyn.strtab === null) return null;
    const addr = dyn.strtab;
    for (const p of phdrs) {
      if (p.type !== PT_LOAD) continue;
      if (addr >= p.vaddr && addr < p.vaddr + BigInt(p.filesz)) {
        const offset = p.offset + Number(addr - p.vaddr);
        const inSegment = p.offset + p.filesz - offset;
        const size = dyn.strsz !== null && dyn.strsz <= BigInt(inSegment) ? Number(dyn.strsz) : inSegment;
        return { offset, size };
      }
    }
    return null;
  }

  /** The strings at the given offsets of a string table, reading only the span that holds them. */
  private async readStrings(table: { offset: number; size: number }, dyn: DynamicEntries): Promise<Map<bigint, string>> {
    const wanted = [...dyn.needed];
    for (const o of [dyn.soname, dyn.runpath, dyn.rpath]) if (o !== null) wanted.push(o);
    const out = new Map<bigint, string>();
    if (wanted.length === 0) return out;
    for (const o of wanted) {
      if (o >= BigInt(table.size)) this.fail(`dynamic string offset ${o} is outside the string table (${table.size} bytes)`);
    }
    const offsets = wanted.map(Number);
    const lo = Math.min(...offsets);
    const hi = Math.min(table.size, Math.max(...offsets) + 512);
    const span = await this.read(table.offset + lo, hi - lo, 'dynamic string table');
    for (const o of offsets) {
      const key = BigInt(o);
      if (out.has(key)) continue;
      const nul = span.indexOf(0, o - lo);
      if (nul >= 0) {
        out.set(key, span.toString('utf8', o - lo, nul));
        continue;
      }
      // A string running past the span: read on from where it starts.
      const len = Math.min(MAX_STRING, table.size - o);
      const more = await this.read(table.offset + o, len, 'dynamic string table');
      const end = more.indexOf(0);
      if (end < 0) this.fail(`unterminated string at offset ${o} of the dynamic string table`);
      out.set(key, more.toString('utf8', 0, end));
    }
    return out;
  }

  private async sectionNames(sections: SectionHeader[], shstrndx: number): Promise<ElfSection[]> {
    const names = sections[shstrndx];
    let table: Buffer | null = null;
    if (names && names.type !== SHT_NOBITS && names.size > 0) {
      if (names.size > MAX_TABLE_ENTRIES * 64) this.fail(`implausible section name table size ${names.size}`);
      table = await this.read(names.offset, names.size, 'section name table');
    }
    return sections.map((s) => {
      let name = '';
      if (table && s.nameOffset < table.length) {
        const end = table.indexOf(0, s.nameOffset);
        name = table.toString('latin1', s.nameOffset, end < 0 ? table.length : end);
      }
      return { name, type: s.type, size: s.size };
    });
  }
}

function hasStrings(dyn: DynamicEntries): boolean {
  return dyn.needed.length > 0 || dyn.soname !== null || dyn.runpath !== null || dyn.rpath !== null;
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && 'code' in err && (err as NodeJS.ErrnoException).code === code;
}
