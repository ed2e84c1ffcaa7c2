// Dependency-scanning speed: scanPackages on a package tree of 1,000 ELF files (copies of executables and
// shared libraries compiled here, plus some of the system's) versus running `readelf -d` on each file
// (two at a time, one per core), measured side by side in the same run on the same page-cached tree.
// BENCH_QUICK=1 uses 200 files.
//
//   node bench/scan.ts
import { execa } from 'execa';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { mapLimit } from '../src/apk/sca/limit.ts';
import { scanPackages } from '../src/apk/sca/scan.ts';
import { readElf } from '../src/elf/reader.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const FILES = QUICK ? 200 : 1000;
const ROUNDS = QUICK ? 2 : 3;

async function compileSamples(dir: string): Promise<string[]> {
  await writeFile(join(dir, 'lib.c'), '#include <stdio.h>\n#include <math.h>\nint lib_f(double x) { printf("%f", sqrt(x)); return 0; }\n');
  await writeFile(join(dir, 'main.c'), 'int lib_f(double);\nint main(void) { return lib_f(2.0); }\n');
  await execa('cc', ['-shared', '-fPIC', '-Wl,-soname,libsample.so.1', '-o', 'libsample.so.1.0.0', 'lib.c', '-lm'], { cwd: dir });
  await execa('cc', ['-o', 'prog', 'main.c', '-L.', '-l:libsample.so.1.0.0', '-Wl,-rpath,/usr/lib/sample'], { cwd: dir });
  await execa('cc', ['-g', '-o', 'prog-debug', 'main.c', '-L.', '-l:libsample.so.1.0.0'], { cwd: dir });
  const samples = ['libsample.so.1.0.0', 'prog', 'prog-debug'].map((f) => join(dir, f));
  // A few real-world binaries of assorted sizes, for realistic header layouts.
  for (const sys of ['/bin/ls', '/bin/sh', '/usr/bin/env', '/usr/bin/readelf']) {
    try {
      await copyFile(sys, join(dir, `sys-${sys.replace(/\//g, '_')}`));
      samples.push(join(dir, `sys-${sys.replace(/\//g, '_')}`));
    } catch {
      // Not every system has every tool; the compiled samples are enough.
    }
  }
  return samples;
}

async function buildTree(root: string, samples: string[]): Promise<string[]> {
  const files: string[] = [];
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await mkdir(join(root, 'usr/lib'), { recursive: true });
  for (let i = 0; i < FILES; i++) {
    const sample = samples[i % samples.length] as string;
    const isLib = sample.includes('.so');
    const rel = isLib ? `usr/lib/libsample${i}.so.1` : `usr/bin/tool${i}`;
    await copyFile(sample, join(root, rel));
    files.push(join(root, rel));
  }
  return files;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const work = await mkdtemp(join(tmpdir(), 'builder-bench-scan-'));
try {
  const samples = await compileSamples(work);
  const root = join(work, 'pkg');
  const files = await buildTree(root, samples);
  const input = {
    packages: [{ name: 'bench', version: '1.0-r0', dir: root, options: { noProvides: false, noDepends: false, noCommands: false }, declared: { runtime: [], provides: [] } }],
  };

  // Warm the page cache and the JIT for both sides before measuring.
  const first = (await scanPackages(input)).get('bench');
  await mapLimit(files.slice(0, 20), 2, (f) => execa('readelf', ['-d', f]));
  const readelfAll = async (): Promise<void> => {
    await mapLimit(files, 2, (f) => execa('readelf', ['-d', f]));
  };
  const readerOnly = async (): Promise<void> => {
    await mapLimit(files, 16, (f) => readElf(f));
  };

  const ours: number[] = [];
  const headers: number[] = [];
  const theirs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    ours.push(await time(() => scanPackages(input)));
    headers.push(await time(readerOnly));
    theirs.push(await time(readelfAll));
  }
  const o = median(ours);
  const h = median(headers);
  const t = median(theirs);
  const n = (await readdir(join(root, 'usr/bin'))).length + (await readdir(join(root, 'usr/lib'))).length;
  console.log(`tree: ${n} ELF files (${samples.length} distinct samples); ${ROUNDS} rounds, medians`);
  console.log(`scanPackages (walk + ELF + resolve):  ${o.toFixed(0).padStart(6)} ms  (${((n / o) * 1000).toFixed(0)} files/s)`);
  console.log(`readElf only, 16 in flight:           ${h.toFixed(0).padStart(6)} ms`);
  console.log(`readelf -d per file, 2 at a time:     ${t.toFixed(0).padStart(6)} ms  (${((n / t) * 1000).toFixed(0)} files/s)`);
  console.log(`ratio readelf / scanPackages: ${(t / o).toFixed(1)}x (goal >= 5x)`);
  console.log(`found: ${first?.provides.length ?? 0} provides, ${first?.depend.length ?? 0} depends, ${first?.warnings.length ?? 0} warnings`);
  if (t / o < 5) process.exitCode = 1;
} finally {
  await rm(work, { recursive: true, force: true });
}
