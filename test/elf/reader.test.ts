import { chmod, copyFile, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { ElfFormatError, isElf, readElf, type ElfInfo } from '../../src/elf/reader.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { synthElf } from './synth.ts';

const tempDir = useTempDirs();

async function cc(args: string[], cwd: string): Promise<void> {
  await execa('cc', args, { cwd });
}

/** What readelf says, as a reference for our reader. */
async function readelfFacts(file: string): Promise<Pick<ElfInfo, 'interpreter' | 'needed' | 'soname' | 'runpath' | 'rpath'>> {
  const { stdout } = await execa('readelf', ['-dlW', file], { env: { LC_ALL: 'C' } });
  const bracket = (tag: string): string[] =>
    [...stdout.matchAll(new RegExp(`\\(${tag}\\)\\s+[^\\[]*\\[([^\\]]*)\\]`, 'g'))].map((m) => m[1] ?? '');
  const interp = /\[Requesting program interpreter: ([^\]]+)\]/.exec(stdout);
  const split = (v: string[]): string[] => (v[0] ? v[0].split(':') : []);
  return {
    interpreter: interp?.[1] ?? null,
    needed: bracket('NEEDED'),
    soname: bracket('SONAME')[0] ?? null,
    runpath: split(bracket('RUNPATH')),
    rpath: split(bracket('RPATH')),
  };
}

describe('readElf on binaries compiled here', () => {
  it('reads an executable, the shared library it links against, and the link between them', async () => {
    const d = await tempDir();
    await writeFile(join(d, 'greet.c'), 'int greet(int x) { return x + 1; }\n');
    await writeFile(join(d, 'main.c'), 'int greet(int);\nint main(void) { return greet(41) == 42 ? 0 : 1; }\n');
    await cc(['-shared', '-fPIC', '-Wl,-soname,libgreet.so.3', '-o', 'libgreet.so.3.1.0', 'greet.c'], d);
    await copyFile(join(d, 'libgreet.so.3.1.0'), join(d, 'libgreet.so'));
    await cc(['-o', 'hello', 'main.c', '-L.', '-lgreet', '-Wl,-rpath,$ORIGIN/../lib:/opt/x', '-Wl,--enable-new-dtags'], d);

    const lib = await readElf(join(d, 'libgreet.so.3.1.0'));
    expect(lib).not.toBeNull();
    expect(lib?.type).toBe('shared');
    expect(lib?.soname).toBe('libgreet.so.3');
    expect(lib?.interpreter).toBeNull();
    expect(lib?.pie).toBe(false);

    const exe = await readElf(join(d, 'hello'));
    expect(exe?.needed).toContain('libgreet.so.3');
    expect(exe?.needed).toContain('libc.so.6');
    expect(exe?.runpath).toEqual(['$ORIGIN/../lib', '/opt/x']);
    expect(exe?.rpath).toEqual([]);
    expect(exe?.soname).toBeNull();
    expect(exe?.interpreter).toMatch(/^\/lib.*ld-/);
    expect(exe?.bits).toBe(64);
    expect(exe?.endian).toBe('little');
    expect(exe?.dynamic).toBe(true);
    expect(exe).toMatchObject(await readelfFacts(join(d, 'hello')));
    expect(await isElf(join(d, 'hello'))).toBe(true);
    expect(await isElf(join(d, 'main.c'))).toBe(false);
  });

  it('reads DT_RPATH (old-style dtags)', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'r.c'), 'int main(void) { return 0; }\n');
    await cc(['-o', 'r', 'r.c', '-Wl,-rpath,/usr/lib/r1:/usr/lib/r2', '-Wl,--disable-new-dtags'], dir);
    const info = await readElf(join(dir, 'r'));
    expect(info?.rpath).toEqual(['/usr/lib/r1', '/usr/lib/r2']);
    expect(info?.runpath).toEqual([]);
  });

  it('reads a static executable: no interpreter, no dynamic section', async (ctx) => {
    const dir = await tempDir();
    await writeFile(join(dir, 's.c'), 'int main(void) { return 0; }\n');
    try {
      await cc(['-static', '-o', 's', 's.c'], dir);
    } catch {
      ctx.skip('static libc is not installed (cc -static failed)');
    }
    const info = await readElf(join(dir, 's'));
    expect(info?.type).toBe('executable');
    expect(info?.interpreter).toBeNull();
    expect(info?.dynamic).toBe(false);
    expect(info?.needed).toEqual([]);
  });

  it('reads a relocatable object', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'o.c'), 'int f(void) { return 1; }\n');
    await cc(['-c', '-o', 'o.o', 'o.c'], dir);
    const info = await readElf(join(dir, 'o.o'), { sections: true });
    expect(info?.type).toBe('relocatable');
    expect(info?.dynamic).toBe(false);
    expect(info?.sections?.map((s) => s.name)).toContain('.text');
  });

  it('lists section names on request, which tells stripped from unstripped', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'g.c'), 'int main(void) { return 0; }\n');
    await cc(['-g', '-o', 'g', 'g.c'], dir);
    const full = await readElf(join(dir, 'g'), { sections: true });
    const names = full?.sections?.map((s) => s.name) ?? [];
    expect(names).toContain('.symtab');
    expect(names).toContain('.debug_info');
    expect((await readElf(join(dir, 'g')))?.sections).toBeNull();
    await execa('strip', [join(dir, 'g')]);
    const stripped = await readElf(join(dir, 'g'), { sections: true });
    expect(stripped?.sections?.map((s) => s.name)).not.toContain('.symtab');
    expect(stripped?.needed).toEqual(full?.needed);
  });

  it('reads 32-bit executables and libraries (gcc -m32)', async (ctx) => {
    const d = await tempDir();
    await writeFile(join(d, 'f.c'), 'int f(void) { return 1; }\n');
    await writeFile(join(d, 'm.c'), 'int f(void);\nvoid _start(void) { f(); for (;;) ; }\n');
    try {
      // Freestanding: needs only the 32-bit code generator and linker, not a 32-bit libc.
      await cc(['-m32', '-nostdlib', '-shared', '-fPIC', '-Wl,-soname,libf32.so.1', '-o', 'libf32.so', 'f.c'], d);
      await cc(['-m32', '-nostdlib', '-fPIE', '-pie', '-o', 'm32', 'm.c', '-L.', '-lf32', '-Wl,--dynamic-linker,/lib/ld-linux.so.2'], d);
    } catch (err) {
      ctx.skip(`gcc -m32 cannot build here: ${String(err).split('\n')[0]}`);
    }
    const lib = await readElf(join(d, 'libf32.so'));
    expect(lib).toMatchObject({ bits: 32, endian: 'little', machineName: 'i386', soname: 'libf32.so.1' });
    const exe = await readElf(join(d, 'm32'));
    expect(exe).toMatchObject({ bits: 32, interpreter: '/lib/ld-linux.so.2', needed: ['libf32.so.1'], pie: true });
    expect(exe).toMatchObject(await readelfFacts(join(d, 'm32')));
  });
});

describe('readElf on system binaries agrees with readelf', () => {
  const candidates = ['/bin/ls', '/bin/sh', '/usr/bin/env', '/usr/bin/gcc', '/usr/bin/readelf'];
  it.for(candidates)('%s', async (file, ctx) => {
    try {
      await stat(file);
    } catch {
      ctx.skip(`${file} is not installed`);
    }
    const info = await readElf(file);
    expect(info).not.toBeNull();
    expect(info).toMatchObject(await readelfFacts(file));
  });

  it('the shared C library', async () => {
    const { stdout } = await execa('cc', ['-print-file-name=libc.so.6']);
    const info = await readElf(stdout.trim());
    expect(info?.soname).toBe('libc.so.6');
    expect(info).toMatchObject(await readelfFacts(stdout.trim()));
  });
});

describe('hand-assembled ELF files', () => {
  const variants = [
    { bits: 64, endian: 'big', machine: 22, name: 's390x' },
    { bits: 32, endian: 'big', machine: 20, name: 'ppc' },
    { bits: 32, endian: 'little', machine: 40, name: 'arm' },
    { bits: 64, endian: 'little', machine: 183, name: 'aarch64' },
  ] as const;
  for (const v of variants) {
    for (const sections of [false, true]) {
      it(`${v.bits}-bit ${v.endian}-endian ${v.name}${sections ? ' with section headers' : ' without section headers'}`, async () => {
        const d = await tempDir();
        const file = join(d, 'x');
        await writeFile(
          file,
          synthElf({
            bits: v.bits,
            endian: v.endian,
            machine: v.machine,
            interpreter: '/lib/ld-musl.so.1',
            needed: ['libz.so.1', 'libc.musl.so.1'],
            soname: 'libx.so.2',
            runpath: '/usr/lib/x',
            sections,
          }),
        );
        const info = await readElf(file, { sections: true });
        expect(info).toMatchObject({
          bits: v.bits,
          endian: v.endian,
          machine: v.machine,
          machineName: v.name === 's390x' ? 's390' : v.name,
          interpreter: '/lib/ld-musl.so.1',
          needed: ['libz.so.1', 'libc.musl.so.1'],
          soname: 'libx.so.2',
          runpath: ['/usr/lib/x'],
          rpath: [],
        });
        expect(info?.sections?.map((s) => s.name)).toEqual(sections ? ['', '.dynstr', '.dynamic', '.shstrtab'] : []);
        // readelf is the reference for the byte-order handling.
        expect(info).toMatchObject(await readelfFacts(file));
      });
    }
  }
});

describe('broken input', () => {
  let exe: string;
  let exeBytes: Buffer;
  let expected: ElfInfo | null;
  beforeAll(async () => {
    const d = await tempDir();
    await writeFile(join(d, 'main.c'), 'int main(void) { return 0; }\n');
    await cc(['-o', 'main', 'main.c', '-Wl,-rpath,/x'], d);
    exe = join(d, 'main');
    exeBytes = await readFile(exe);
    expected = await readElf(exe);
  });

  it('returns null for non-ELF files, including empty and short ones', async () => {
    const d = await tempDir();
    for (const [name, content] of [
      ['empty', ''],
      ['short', '\x7fEL'],
      ['text', '#!/bin/sh\necho hi\n'],
    ] as const) {
      await writeFile(join(d, name), content, 'latin1');
      expect(await readElf(join(d, name))).toBeNull();
      expect(await isElf(join(d, name))).toBe(false);
    }
    expect(await isElf(d)).toBe(false);
  });

  it('rejects truncated copies with an ElfFormatError naming the file', async () => {
    const d = await tempDir();
    // Offsets that cut the ELF header, the program headers, and the data the headers point at.
    for (const len of [5, 20, 63, 64, 100, 400, 1000, Math.floor(exeBytes.length / 2)]) {
      const file = join(d, `cut-${len}`);
      await writeFile(file, exeBytes.subarray(0, len));
      const err = await readElf(file).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, `truncated at ${len}`).toBeInstanceOf(ElfFormatError);
      expect((err as ElfFormatError).message).toContain(file);
      expect((err as ElfFormatError).file).toBe(file);
    }
  });

  it('rejects an unknown class or byte order', async () => {
    const d = await tempDir();
    const bad = Buffer.from(exeBytes);
    bad[4] = 7;
    await writeFile(join(d, 'cls'), bad);
    await expect(readElf(join(d, 'cls'))).rejects.toThrow(/unknown ELF class 7/);
    const bad2 = Buffer.from(exeBytes);
    bad2[5] = 0;
    await writeFile(join(d, 'data'), bad2);
    await expect(readElf(join(d, 'data'))).rejects.toThrow(/unknown data encoding/);
  });

  it('finds the dynamic strings without section headers (PT_DYNAMIC + DT_STRTAB through PT_LOAD)', async () => {
    const d = await tempDir();
    const noSections = Buffer.from(exeBytes);
    noSections.writeBigUInt64LE(0n, 40); // e_shoff
    noSections.writeUInt16LE(0, 60); // e_shnum
    noSections.writeUInt16LE(0, 62); // e_shstrndx
    await writeFile(join(d, 'nosh'), noSections);
    expect(await readElf(join(d, 'nosh'))).toMatchObject({ ...expected, file: join(d, 'nosh') });
  });

  it('falls back to the section headers when there is no PT_DYNAMIC', async () => {
    const d = await tempDir();
    const noDyn = Buffer.from(exeBytes);
    const phoff = Number(noDyn.readBigUInt64LE(32));
    const phnum = noDyn.readUInt16LE(56);
    for (let i = 0; i < phnum; i++) {
      if (noDyn.readUInt32LE(phoff + i * 56) === 2) noDyn.writeUInt32LE(0, phoff + i * 56);
    }
    await writeFile(join(d, 'nodyn'), noDyn);
    const info = await readElf(join(d, 'nodyn'));
    expect(info?.needed).toEqual(expected?.needed);
    expect(info?.runpath).toEqual(['/x']);
  });

  it('rejects a dynamic string offset outside the string table', async () => {
    const d = await tempDir();
    const file = join(d, 'x');
    const buf = synthElf({ bits: 64, endian: 'little', machine: 62, needed: ['libz.so.1'] });
    // The first dynamic entry is DT_NEEDED: point it far past DT_STRSZ.
    const dynOff = findDynamic(buf);
    buf.writeBigUInt64LE(100_000n, dynOff + 8);
    await writeFile(file, buf);
    await expect(readElf(file)).rejects.toThrow(ElfFormatError);
  });

  it('never throws anything but ElfFormatError on randomly corrupted headers', async () => {
    const d = await tempDir();
    const file = join(d, 'fuzz');
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const headerLen = Math.min(exeBytes.length, 4096);
    let parsed = 0;
    let rejected = 0;
    for (let round = 0; round < 300; round++) {
      const buf = Buffer.from(exeBytes);
      const flips = 1 + rand(8);
      // Keep the magic so every round exercises the parser rather than the "not ELF" exit.
      for (let i = 0; i < flips; i++) buf[4 + rand(headerLen - 4)] = rand(256);
      await writeFile(file, buf);
      try {
        const info = await readElf(file, { sections: true });
        expect(info).not.toBeNull();
        parsed++;
      } catch (err) {
        expect(err).toBeInstanceOf(ElfFormatError);
        rejected++;
      }
    }
    expect(parsed + rejected).toBe(300);
  });

  it('propagates I/O errors for unreadable files', async () => {
    await expect(readElf('/nonexistent/file')).rejects.toMatchObject({ code: 'ENOENT' });
    if (process.getuid?.() !== 0) {
      const d = await tempDir();
      const f = join(d, 'locked');
      await writeFile(f, exeBytes);
      await chmod(f, 0);
      await expect(readElf(f)).rejects.toMatchObject({ code: 'EACCES' });
    }
  });

  it('does not read the whole file', async () => {
    const d = await tempDir();
    const big = join(d, 'big');
    // The same executable with 64 MiB of padding after it: the headers point only at the front.
    await writeFile(big, exeBytes);
    const fh = await open(big, 'r+');
    await fh.truncate(exeBytes.length + 64 * 1024 * 1024);
    await fh.close();
    const before = process.memoryUsage().arrayBuffers;
    const info = await readElf(big);
    expect(info?.needed).toEqual(expected?.needed);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
  });
});

function findDynamic(buf: Buffer): number {
  const phoff = Number(buf.readBigUInt64LE(32));
  const phnum = buf.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * 56;
    if (buf.readUInt32LE(p) === 2) return Number(buf.readBigUInt64LE(p + 8));
  }
  throw new Error('no PT_DYNAMIC');
}
