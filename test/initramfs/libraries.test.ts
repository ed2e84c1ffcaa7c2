// The shared-library closure: checked against the dynamic loader itself (ldd) on this host's programs, and on
// synthetic trees for the search rules (RUNPATH with $ORIGIN, wrong-class libraries, absolute symlinks).
import { execa } from 'execa';
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { libraryClosure, MissingLibraryError } from '../../src/initramfs/libraries.ts';
import { synthElf } from '../elf/synth.ts';

const EM_X86_64 = 62;
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tree(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'builder-libs-'));
  dirs.push(d);
  return d;
}

async function put(root: string, rel: string, data: Buffer): Promise<void> {
  await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
  await writeFile(path.join(root, rel), data, { mode: 0o755 });
}

describe('libraryClosure', () => {
  it('finds exactly the files the dynamic loader loads for a real program', async () => {
    const program = 'usr/bin/ssh';
    const closure = await libraryClosure('/', [program]);
    const ldd = await execa('ldd', [`/${program}`]);
    const loaded = new Set<string>();
    for (const line of ldd.stdout.split('\n')) {
      const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
      if (m?.[1]) loaded.add((await realpath(m[1])).slice(1));
    }
    loaded.add(program);
    const files = new Set<string>();
    for (const p of closure.paths) {
      if ((await realpath(path.join('/', p))) === path.join('/', p)) files.add(p);
    }
    expect(files).toEqual(loaded);
  });

  it('follows RUNPATH with $ORIGIN, skips libraries of another class, and keeps the symlinks on the way', async () => {
    const root = await tree();
    await put(root, 'lib64/ld.so', synthElf({ bits: 64, endian: 'little', machine: EM_X86_64, type: 3, soname: 'ld.so' }));
    await put(root, 'opt/app/bin/app', synthElf({ bits: 64, endian: 'little', machine: EM_X86_64, type: 2, interpreter: '/lib64/ld.so', needed: ['libone.so.1'], runpath: '$ORIGIN/../lib' }));
    // A 32-bit library of the same name earlier in the search path must be passed over.
    await put(root, 'opt/app/lib/libone.so.1.0', synthElf({ bits: 32, endian: 'little', machine: 3, type: 3, soname: 'libone.so.1' }));
    await put(root, 'usr/lib/x86_64-linux-gnu/libone.so.1.0', synthElf({ bits: 64, endian: 'little', machine: EM_X86_64, type: 3, soname: 'libone.so.1', needed: ['libtwo.so'] }));
    await symlink('libone.so.1.0', path.join(root, 'opt/app/lib/libone.so.1'));
    await symlink('/usr/lib/x86_64-linux-gnu/libone.so.1.0', path.join(root, 'usr/lib/x86_64-linux-gnu/libone.so.1'));
    await put(root, 'lib/libtwo.so', synthElf({ bits: 64, endian: 'little', machine: EM_X86_64, type: 3, soname: 'libtwo.so' }));
    const closure = await libraryClosure(root, ['opt/app/bin/app']);
    expect(closure.paths).toEqual([
      'lib/libtwo.so',
      'lib64/ld.so',
      'opt/app/bin/app',
      'usr/lib/x86_64-linux-gnu/libone.so.1',
      'usr/lib/x86_64-linux-gnu/libone.so.1.0',
    ]);
  });

  it('names the program and the library that is missing', async () => {
    const root = await tree();
    await put(root, 'bin/tool', synthElf({ bits: 64, endian: 'little', machine: EM_X86_64, type: 2, needed: ['libgone.so.3'] }));
    const err = await libraryClosure(root, ['bin/tool']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingLibraryError);
    expect((err as Error).message).toMatch(/^bin\/tool needs libgone\.so\.3, which is not in the tree/);
    await put(root, 'bin/other', synthElf({ bits: 64, endian: 'little', machine: EM_X86_64, type: 2, interpreter: '/lib/ld-missing.so' }));
    await expect(libraryClosure(root, ['bin/other'])).rejects.toThrow(/program interpreter \/lib\/ld-missing\.so is not in the tree/);
  });
});
