// Index speed: `builder index` over 1,000 small signed packages (the real command, a fresh process as a
// user runs it), then adding one package to that 1,000-package index; side by side with the reference
// `apk index` when it is installed (Debian 12 has none, so usually ours alone).
//
//   node bench/index.ts            BENCH_PACKAGES=200 for a quicker run
import { execa } from 'execa';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateSigningKey, loadSigningKey } from '../src/apk/keys.ts';
import { writeApk } from '../src/apk/writer.ts';
import { findExecutable } from '../src/runners/which.ts';
import { Rng } from './lib/rng.ts';

const COUNT = Number(process.env.BENCH_PACKAGES ?? 1000);
const ROUNDS = 3;
const BUILDER = resolve(import.meta.dirname, '../bin/builder');

async function time(run: () => Promise<unknown>): Promise<number> {
  const best: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t = performance.now();
    await run();
    best.push(performance.now() - t);
  }
  return Math.min(...best);
}

const dir = await mkdtemp(join(tmpdir(), 'builder-bench-index-'));
try {
  const keyPath = join(dir, 'bench.rsa');
  await generateSigningKey(keyPath);
  const key = await loadSigningKey(keyPath);
  const rng = new Rng(20261208);
  const pkgDir = join(dir, 'pkgs');
  await mkdir(pkgDir);
  const apks: string[] = [];
  const started = performance.now();
  for (let i = 0; i < COUNT + 1; i++) {
    const tree = join(dir, 'tree');
    await rm(tree, { recursive: true, force: true });
    await mkdir(join(tree, 'usr/bin'), { recursive: true });
    const body = Buffer.alloc(200 + rng.below(4000));
    rng.fill(body);
    await writeFile(join(tree, 'usr/bin', `tool${i}`), body, { mode: 0o755 });
    const name = `pkg${String(i).padStart(4, '0')}`;
    const out = join(pkgDir, `${name}-1.${i % 7}.0-r0.apk`);
    await writeApk({
      sourceDir: tree,
      outputPath: out,
      signingKey: key,
      sourceDateEpoch: 1700000000,
      info: {
        pkgname: name,
        pkgver: `1.${i % 7}.0-r0`,
        arch: 'x86_64',
        origin: name,
        pkgdesc: `bench package ${i}`,
        url: 'https://example.invalid/',
        license: ['MIT'],
        depend: i > 0 ? [`so:lib${i - 1}.so.1`] : [],
        provides: [`cmd:tool${i}=1.${i % 7}.0-r0`],
        replaces: [],
        installIf: [],
        triggers: [],
        builddate: 1700000000,
      },
    });
    apks.push(out);
  }
  console.log(`generated ${COUNT + 1} signed packages in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const all = apks.slice(0, COUNT);
  const extra = apks[COUNT] as string;
  const index = join(dir, 'ours', 'APKINDEX.tar.gz');
  await mkdir(join(dir, 'ours'));

  const full = await time(async () => {
    await rm(index, { force: true });
    await execa(BUILDER, ['index', '-o', index, '--signing-key', keyPath, ...all]);
  });
  // Adding one: the index already lists the 1,000; the command is given only the new package.
  const fullBackup = join(dir, 'full.tar.gz');
  await execa('cp', [index, fullBackup]);
  const addOne = await time(async () => {
    await execa('cp', [fullBackup, index]);
    await execa(BUILDER, ['index', '-o', index, '--signing-key', keyPath, extra]);
  });
  // What a process costs before doing any work: the floor under both numbers.
  const startup = await time(() => execa(BUILDER, ['version']));

  const apk = await findExecutable('apk');
  let reference: number | undefined;
  if (apk) {
    const refIndex = join(dir, 'reference.tar.gz');
    reference = await time(() => execa(apk, ['index', '--allow-untrusted', '-o', refIndex, ...all]));
  }
  const ms = (n: number) => `${n.toFixed(0)} ms`;
  console.log(`full index of ${COUNT} packages: builder ${ms(full)}${reference !== undefined ? `, apk index ${ms(reference)}, ratio ${(full / reference).toFixed(2)}× (goal ≤ 1.0×)` : ' (apk index not installed: no reference run)'}`);
  console.log(`add 1 package to a ${COUNT}-package index: builder ${ms(addOne)} (goal ≤ 50 ms of work over start-up)`);
  console.log(`builder start-up (builder version): ${ms(startup)}; add-one work over start-up: ${ms(addOne - startup)}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
