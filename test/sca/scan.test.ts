import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scanPackages, type ScanPackageInput, type ScanResult } from '../../src/apk/sca/scan.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { synthElf } from '../elf/synth.ts';
import { buildGreet, link, NO_OPTIONS, put } from './fixtures.ts';

const tempDir = useTempDirs();

function pkg(name: string, dir: string, extra: Partial<ScanPackageInput> = {}): ScanPackageInput {
  return { name, version: '1.2.3-r1', dir, options: NO_OPTIONS, declared: { runtime: [], provides: [] }, ...extra };
}

function get(results: Map<string, ScanResult>, name: string): ScanResult {
  const r = results.get(name);
  if (!r) throw new Error(`no result for ${name}`);
  return r;
}

describe('the C library + program example', () => {
  it('library provides so:, program depends on it, -dev gets .so symlink dep and pc: provides/depends', async () => {
    const g = await buildGreet(await tempDir());
    const results = await scanPackages({
      packages: [pkg('libgreet', g.lib), pkg('greet', g.program), pkg('libgreet-dev', g.dev)],
    });

    const lib = get(results, 'libgreet');
    expect(lib.provides).toEqual(['so:libgreet.so.1=1.2.3']);
    expect(lib.depend).toEqual(['so:libc.so.6']);
    expect(lib.warnings).toEqual([]);

    const program = get(results, 'greet');
    expect(program.provides).toEqual(['cmd:greet=1.2.3-r1']);
    // The interpreter, libc and the sibling's library; nothing else.
    expect(program.depend).toEqual(['so:ld-linux-x86-64.so.2', 'so:libc.so.6', 'so:libgreet.so.1']);

    const dev = get(results, 'libgreet-dev');
    expect(dev.provides).toEqual(['pc:greet=1.2.3']);
    expect(dev.depend).toEqual(['pc:libbar', 'pc:libfoo', 'pc:zlib>=1.2.11', 'so:libgreet.so.1']);
    expect(dev.warnings).toEqual([]);
  });

  it('no-depends, no-provides and no-commands filter what is generated, never what is declared', async () => {
    const g = await buildGreet(await tempDir());
    const results = await scanPackages({
      packages: [
        pkg('libgreet', g.lib, { options: { ...NO_OPTIONS, noProvides: true }, declared: { runtime: [], provides: ['libgreet-virtual=1'] } }),
        pkg('greet', g.program, { options: { ...NO_OPTIONS, noCommands: true } }),
        pkg('libgreet-dev', g.dev, { options: { ...NO_OPTIONS, noDepends: true }, declared: { runtime: ['zlib-dev'], provides: [] } }),
      ],
    });
    expect(get(results, 'libgreet').provides).toEqual(['libgreet-virtual=1']);
    expect(get(results, 'libgreet').depend).toEqual(['so:libc.so.6']);
    // The sibling provides nothing automatically, so the program depends on it by name and exact version.
    expect(get(results, 'greet').depend).toEqual(['libgreet=1.2.3-r1', 'so:ld-linux-x86-64.so.2', 'so:libc.so.6']);
    expect(get(results, 'greet').provides).toEqual([]);
    expect(get(results, 'libgreet-dev').depend).toEqual(['zlib-dev']);
    expect(get(results, 'libgreet-dev').provides).toEqual(['pc:greet=1.2.3']);
  });

  it('merges with declared entries: declared wins per name, sorted, self-provided dropped', async () => {
    const g = await buildGreet(await tempDir());
    const results = await scanPackages({
      packages: [
        pkg('libgreet', g.lib),
        pkg('greet', g.program, {
          declared: {
            runtime: ['so:libgreet.so.1>=1.2', 'busybox', 'cmd:greet', 'greet', 'busybox'],
            provides: ['cmd:greet=9.9', 'greeter'],
          },
        }),
      ],
    });
    const program = get(results, 'greet');
    expect(program.provides).toEqual(['cmd:greet=9.9', 'greeter']);
    expect(program.depend).toEqual(['busybox', 'so:ld-linux-x86-64.so.2', 'so:libc.so.6', 'so:libgreet.so.1>=1.2']);
  });

  it('a library in the package itself is not a dependency, wherever it lives (RUNPATH-private libraries)', async () => {
    const g = await buildGreet(await tempDir());
    // The program ships its own copy of the library in a private directory.
    await put(g.program, 'usr/lib/greet/libgreet.so.1', await readFile(join(g.lib, 'usr/lib/libgreet.so.1.2.3')), 0o755);
    const results = await scanPackages({ packages: [pkg('greet', g.program)] });
    expect(get(results, 'greet').depend).toEqual(['so:ld-linux-x86-64.so.2', 'so:libc.so.6']);
    // Not in a standard directory: not provided.
    expect(get(results, 'greet').provides).toEqual(['cmd:greet=1.2.3-r1']);
  });

  it('a library only a sibling has, outside the standard directories, is depended on by package name', async () => {
    const g = await buildGreet(await tempDir());
    const priv = join(g.out, 'greet-libs');
    await put(priv, 'usr/lib/greet/libgreet.so.1.2.3', await readFile(join(g.lib, 'usr/lib/libgreet.so.1.2.3')), 0o755);
    const results = await scanPackages({ packages: [pkg('greet', g.program), pkg('greet-libs', priv)] });
    expect(get(results, 'greet').depend).toContain('greet-libs=1.2.3-r1');
    expect(get(results, 'greet').depend).not.toContain('so:libgreet.so.1');
    expect(get(results, 'greet-libs').provides).toEqual([]);
  });

  it('a .so symlink whose target no package of the build has depends on the versioned name', async () => {
    const g = await buildGreet(await tempDir());
    const results = await scanPackages({ packages: [pkg('libgreet-dev', g.dev, { options: { ...NO_OPTIONS } })] });
    expect(get(results, 'libgreet-dev').depend).toContain('so:libgreet.so.1');
  });
});

describe('scripts', () => {
  it('depends on shebang interpreters, following env, ignoring sh and non-executable files', async () => {
    const d = await tempDir();
    await put(d, 'usr/bin/py', '#!/usr/bin/env python3\nprint(1)\n', 0o755);
    await put(d, 'usr/bin/pl', '#!/usr/bin/env -S perl -w\n', 0o755);
    await put(d, 'usr/bin/rb', '#! /usr/bin/env RUBYOPT=-w ruby\n', 0o755);
    await put(d, 'usr/libexec/x/run', '#!/bin/bash\n', 0o755);
    await put(d, 'usr/bin/s', '#!/bin/sh\necho\n', 0o755);
    await put(d, 'usr/share/doc/example.sh', '#!/usr/bin/zsh\n', 0o644);
    // Interpreted by a command the package itself ships: no dependency.
    await put(d, 'usr/bin/mytool', '#!/bin/sh\n', 0o755);
    await put(d, 'usr/bin/uses-mytool', '#!/usr/bin/mytool\n', 0o755);
    await put(d, 'usr/bin/bad', '#!/usr/bin/env\n', 0o755);
    const r = get(await scanPackages({ packages: [pkg('scripts', d)] }), 'scripts');
    expect(r.depend).toEqual(['cmd:bash', 'cmd:perl', 'cmd:python3', 'cmd:ruby']);
    expect(r.provides).toEqual(
      ['bad', 'mytool', 'pl', 'py', 'rb', 's', 'uses-mytool'].map((c) => `cmd:${c}=1.2.3-r1`),
    );
    expect(r.warnings.join('\n')).toMatch(/usr\/bin\/bad: .*names no command after env/);
  });

  it('commands are executables directly in the command directories; symlinks count when they resolve', async () => {
    const d = await tempDir();
    await put(d, 'bin/busybox', '#!/bin/sh\n', 0o755);
    await link(d, 'bin/ls', 'busybox');
    await link(d, 'usr/sbin/abs', '/bin/busybox');
    await link(d, 'usr/bin/dangling', 'nowhere');
    await put(d, 'usr/bin/data.txt', 'not executable');
    await put(d, 'usr/bin/sub/deep', '#!/bin/sh\n', 0o755);
    const r = get(await scanPackages({ packages: [pkg('bb', d)] }), 'bb');
    expect(r.provides).toEqual(['cmd:abs=1.2.3-r1', 'cmd:busybox=1.2.3-r1', 'cmd:ls=1.2.3-r1']);
    expect(r.warnings).toEqual(['usr/bin/dangling: broken symlink to nowhere; not provided as a command']);
  });

  it('resolves script interpreters to a sibling whose commands are not provided', async () => {
    const d = await tempDir();
    await put(join(d, 'a'), 'usr/bin/run', '#!/usr/bin/env mylang\n', 0o755);
    await put(join(d, 'b'), 'usr/bin/mylang', '#!/bin/sh\n', 0o755);
    const results = await scanPackages({
      packages: [pkg('a', join(d, 'a')), pkg('b', join(d, 'b'), { options: { ...NO_OPTIONS, noCommands: true } })],
    });
    expect(get(results, 'a').depend).toEqual(['b=1.2.3-r1']);
  });
});

describe('ELF details and bad input', () => {
  it('maps the musl interpreter to the libc.musl provider and reads big-endian objects', async () => {
    const d = await tempDir();
    await put(d, 'usr/bin/prog', synthElf({ bits: 64, endian: 'big', machine: 22, type: 3, interpreter: '/lib/ld-musl-s390x.so.1', needed: ['libz.so.1', 'libc.musl-s390x.so.1'] }), 0o755);
    await put(d, 'usr/lib/libq.so.2.0', synthElf({ bits: 32, endian: 'little', machine: 40, soname: 'libq.so.2', needed: ['libz.so.1'] }), 0o755);
    const r = get(await scanPackages({ packages: [pkg('p', d)] }), 'p');
    expect(r.depend).toEqual(['so:libc.musl-s390x.so.1', 'so:libz.so.1']);
    expect(r.provides).toContain('so:libq.so.2=2.0');
  });

  it('the package that contains the interpreter does not depend on it', async () => {
    const d = await tempDir();
    await put(d, 'lib/ld-musl-x86_64.so.1', synthElf({ bits: 64, endian: 'little', machine: 62, soname: 'libc.musl-x86_64.so.1' }), 0o755);
    await link(d, 'lib/libc.musl-x86_64.so.1', 'ld-musl-x86_64.so.1');
    await put(d, 'usr/bin/ldd', synthElf({ bits: 64, endian: 'little', machine: 62, interpreter: '/lib/ld-musl-x86_64.so.1', needed: ['libc.musl-x86_64.so.1'] }), 0o755);
    const r = get(await scanPackages({ packages: [pkg('musl', d)] }), 'musl');
    expect(r.depend).toEqual([]);
    expect(r.provides).toEqual(['cmd:ldd=1.2.3-r1', 'so:libc.musl-x86_64.so.1=1']);
  });

  it('skips corrupt ELF files with a warning naming them, and keeps scanning', async () => {
    const g = await buildGreet(await tempDir());
    const good = await readFile(join(g.program, 'usr/bin/greet'));
    await writeFile(join(g.program, 'usr/bin/broken'), good.subarray(0, 200), { mode: 0o755 });
    await put(g.program, 'usr/lib/libjunk.so', Buffer.from('\x7fELF\x02\x01garbage', 'latin1'));
    const r = get(await scanPackages({ packages: [pkg('greet', g.program), pkg('libgreet', g.lib)] }), 'greet');
    expect(r.depend).toContain('so:libgreet.so.1');
    expect(r.warnings.some((w) => w.startsWith('usr/bin/broken: not a valid ELF file') && w.endsWith('skipped'))).toBe(true);
    expect(r.warnings.some((w) => w.startsWith('usr/lib/libjunk.so: not a valid ELF file'))).toBe(true);
  });

  it('warns about .pc files without a usable Version and uses the package version', async () => {
    const d = await tempDir();
    await put(d, 'usr/share/pkgconfig/odd.pc', 'Name: odd\nVersion: 1.0 beta\nRequires: a, b >= 2.0-rc1, c != 3\n');
    await put(d, 'usr/lib/pkgconfig/nover.pc', 'Name: nover\nRequires.private: ${missing}x\n');
    await put(d, 'usr/share/doc/not-pkgconfig.pc', 'Version: 9\n');
    const r = get(await scanPackages({ packages: [pkg('pcs', d)] }), 'pcs');
    expect(r.provides).toEqual(['pc:nover=1.2.3', 'pc:odd=1.2.3']);
    expect(r.depend).toEqual(['pc:a', 'pc:b>=2.0_rc1', 'pc:c', 'pc:x']);
    expect(r.warnings).toEqual([
      'usr/lib/pkgconfig/nover.pc: line 2: undefined variable ${missing}',
      'usr/lib/pkgconfig/nover.pc: no Version; pc:nover uses the package version 1.2.3',
      'usr/share/pkgconfig/odd.pc: Version "1.0 beta" is not an apk version; pc:odd uses the package version 1.2.3',
    ]);
  });

  it('symlink loops and links out of the package are warnings, not hangs', async () => {
    const d = await tempDir();
    await link(d, 'usr/bin/loop-a', 'loop-b');
    await link(d, 'usr/bin/loop-b', 'loop-a');
    await link(d, 'usr/lib/libloop.so', 'libloop.so');
    await link(d, 'usr/lib/libother.so', '../../../../elsewhere/libother.so.3');
    const r = get(await scanPackages({ packages: [pkg('loops', d)] }), 'loops');
    expect(r.warnings).toEqual([
      'usr/bin/loop-a: broken symlink to loop-b; not provided as a command',
      'usr/bin/loop-b: broken symlink to loop-a; not provided as a command',
      'usr/lib/libloop.so: symlink to usr/lib/libloop.so, which no package of this build contains',
    ]);
    // `..` stops at the package root, as it does on the installed system.
    expect(r.depend).toEqual(['so:libother.so.3']);
  });

  it('an empty package scans to its declared entries', async () => {
    const d = await tempDir();
    const r = get(await scanPackages({ packages: [pkg('meta', d, { declared: { runtime: ['b', 'a'], provides: [] } })] }), 'meta');
    expect(r).toEqual({ depend: ['a', 'b'], provides: [], warnings: [] });
  });

  it('a missing package directory is an error naming it', async () => {
    await expect(scanPackages({ packages: [pkg('x', '/nonexistent/dir')] })).rejects.toThrow(/\/nonexistent\/dir/);
  });
});
