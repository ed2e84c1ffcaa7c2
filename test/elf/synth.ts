// Hand-assembled ELF files for the layouts no compiler on this machine emits (big-endian, other machines):
// a PT_LOAD covering the file, optional PT_INTERP, a PT_DYNAMIC with DT_STRTAB pointing into the load
// segment, and optionally section headers (.dynstr, .dynamic, .shstrtab).

export interface SynthElf {
  bits: 32 | 64;
  endian: 'little' | 'big';
  machine: number;
  type?: number;
  interpreter?: string;
  needed?: string[];
  soname?: string;
  runpath?: string;
  rpath?: string;
  sections?: boolean;
  /** Virtual address the file is loaded at (DT_STRTAB = base + file offset). */
  base?: number;
}

export function synthElf(spec: SynthElf): Buffer {
  const is64 = spec.bits === 64;
  const le = spec.endian === 'little';
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const shentsize = is64 ? 64 : 40;
  const dynentsize = is64 ? 16 : 8;
  const base = spec.base ?? 0x400000;

  // Dynamic string table.
  const strs: string[] = [''];
  const strOffset = new Map<string, number>();
  let strLen = 1;
  const addStr = (s: string): number => {
    const known = strOffset.get(s);
    if (known !== undefined) return known;
    const at = strLen;
    strs.push(s);
    strOffset.set(s, at);
    strLen += Buffer.byteLength(s) + 1;
    return at;
  };
  const dyn: [number, number][] = [];
  for (const n of spec.needed ?? []) dyn.push([1, addStr(n)]);
  if (spec.soname !== undefined) dyn.push([14, addStr(spec.soname)]);
  if (spec.rpath !== undefined) dyn.push([15, addStr(spec.rpath)]);
  if (spec.runpath !== undefined) dyn.push([29, addStr(spec.runpath)]);
  const dynstr = Buffer.concat(strs.map((s) => Buffer.from(`${s}\0`)));

  const phnum = spec.interpreter === undefined ? 2 : 3;
  const phoff = ehsize;
  let at = phoff + phnum * phentsize;
  const interpOff = at;
  const interp = spec.interpreter === undefined ? Buffer.alloc(0) : Buffer.from(`${spec.interpreter}\0`);
  at += interp.length;
  const dynstrOff = at;
  at += dynstr.length;
  at = align(at, 8);
  const dynOff = at;
  const dynCount = dyn.length + 3; // + DT_STRTAB, DT_STRSZ, DT_NULL
  at += dynCount * dynentsize;
  const shstr = Buffer.from('\0.dynstr\0.dynamic\0.shstrtab\0');
  const shstrOff = at;
  if (spec.sections) at += shstr.length;
  at = align(at, 8);
  const shoff = spec.sections ? at : 0;
  const shnum = spec.sections ? 4 : 0;
  at += shnum * shentsize;
  const out = Buffer.alloc(at);

  const w16 = (v: number, o: number): void => void (le ? out.writeUInt16LE(v, o) : out.writeUInt16BE(v, o));
  const w32 = (v: number, o: number): void => void (le ? out.writeUInt32LE(v, o) : out.writeUInt32BE(v, o));
  const wWord = (v: number, o: number): void => {
    if (is64) void (le ? out.writeBigUInt64LE(BigInt(v), o) : out.writeBigUInt64BE(BigInt(v), o));
    else w32(v, o);
  };

  out.writeUInt32BE(0x7f454c46, 0);
  out[4] = is64 ? 2 : 1;
  out[5] = le ? 1 : 2;
  out[6] = 1;
  w16(spec.type ?? 3, 16);
  w16(spec.machine, 18);
  w32(1, 20);
  wWord(0, 24); // e_entry
  wWord(phoff, is64 ? 32 : 28);
  wWord(shoff, is64 ? 40 : 32);
  w16(ehsize, is64 ? 52 : 40);
  w16(phentsize, is64 ? 54 : 42);
  w16(phnum, is64 ? 56 : 44);
  w16(shentsize, is64 ? 58 : 46);
  w16(shnum, is64 ? 60 : 48);
  w16(spec.sections ? 3 : 0, is64 ? 62 : 50);

  const phdr = (i: number, type: number, offset: number, size: number): void => {
    const p = phoff + i * phentsize;
    w32(type, p);
    if (is64) {
      w32(4, p + 4);
      wWord(offset, p + 8);
      wWord(base + offset, p + 16);
      wWord(base + offset, p + 24);
      wWord(size, p + 32);
      wWord(size, p + 40);
      wWord(8, p + 48);
    } else {
      wWord(offset, p + 4);
      wWord(base + offset, p + 8);
      wWord(base + offset, p + 12);
      wWord(size, p + 16);
      wWord(size, p + 20);
      w32(4, p + 24);
      wWord(8, p + 28);
    }
  };
  phdr(0, 1, 0, out.length);
  phdr(1, 2, dynOff, dynCount * dynentsize);
  if (spec.interpreter !== undefined) phdr(2, 3, interpOff, interp.length);

  interp.copy(out, interpOff);
  dynstr.copy(out, dynstrOff);
  const entries: [number, number][] = [...dyn, [5, base + dynstrOff], [10, dynstr.length], [0, 0]];
  entries.forEach(([tag, val], i) => {
    wWord(tag, dynOff + i * dynentsize);
    wWord(val, dynOff + i * dynentsize + dynentsize / 2);
  });

  if (spec.sections) {
    shstr.copy(out, shstrOff);
    const shdr = (i: number, name: number, type: number, offset: number, size: number, link: number): void => {
      const s = shoff + i * shentsize;
      w32(name, s);
      w32(type, s + 4);
      wWord(offset, s + (is64 ? 24 : 16));
      wWord(size, s + (is64 ? 32 : 20));
      w32(link, s + (is64 ? 40 : 24));
    };
    shdr(1, 1, 3, dynstrOff, dynstr.length, 0);
    shdr(2, 9, 6, dynOff, dynCount * dynentsize, 1);
    shdr(3, 18, 3, shstrOff, shstr.length, 0);
  }
  return out;
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
