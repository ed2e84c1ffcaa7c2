// Packaging speed: writeApk on a generated tree versus `tar -cf - DIR | gzip -6 > out`, measured side by
// side in the same run on the same (page-cached) tree. BENCH_QUICK=1 uses a ~20 MB tree instead of ~200 MB.
//
//   node bench/apk-pack.ts
import { execa } from 'execa';
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey, loadSigningKey } from '../src/apk/keys.ts';
import { verifyApk } from '../src/apk/verify.ts';
import { writeApk } from '../src/apk/writer.ts';
import { Rng } from './lib/rng.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const TARGET_BYTES = QUICK ? 20e6 : 200e6;
const ROUNDS = 3;

/** xorshift32: deterministic, fast enough to fill hundreds of MB. */

const WORDS = (
  'the of and to in is that for it as was with be by on not he this are or his from at which but have an they ' +
  'you were her all she there would their we him been has when who will more no if out so said what up its about ' +
  'package build sandbox signature compress archive function return const value error index stream memory thread'
).split(' ');

/** Prose-like text: compresses roughly 3:1 like source code and documentation. */
function textContent(rng: Rng, size: number): Buffer {
  const parts: string[] = [];
  let len = 0;
  while (len < size) {
    let line = '';
    const n = 4 + rng.below(12);
    for (let i = 0; i < n; i++) line += `${WORDS[rng.below(WORDS.length)]}${rng.below(9) === 0 ? rng.below(10000) : ''} `;
    line += '\n';
    parts.push(line);
    len += line.length;
  }
  return Buffer.from(parts.join(''), 'latin1').subarray(0, size);
}

/** Binary-like: low-entropy bytes with repeated runs, roughly what object code compresses like (~1.7:1). */
function binaryContent(rng: Rng, size: number): Buffer {
  const buf = Buffer.alloc(size);
  let p = 0;
  while (p < size) {
    const run = Math.min(size - p, 16 + rng.below(240));
    if (rng.below(3) === 0 && p > 4096) {
      buf.copy(buf, p, p - 1 - rng.below(4000), p - 1 - rng.below(4000) + run);
    } else {
      for (let i = 0; i < run; i++) buf[p + i] = rng.below(4) === 0 ? rng.next() & 0xff : rng.below(16);
    }
    p += run;
  }
  return buf;
}

function randomContent(rng: Rng, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  rng.fill(buf);
  return buf;
}

async function generateTree(root: string): Promise<{ files: number; bytes: number }> {
  const rng = new Rng(0x5eed);
  const dirs: string[] = [];
  for (let a = 0; a < 8; a++) {
    for (let b = 0; b < 6; b++) {
      for (let c = 0; c < 3; c++) dirs.push(join(`top${a}`, `mid${b}`, `leaf${c}`));
    }
  }
  for (const d of dirs) await mkdir(join(root, d), { recursive: true });
  let bytes = 0;
  let files = 0;
  // A few big files (a tenth of the total), then thousands of small-to-medium ones, log-uniform 1 KiB..256 KiB.
  for (let i = 0; i < 4; i++) {
    const size = Math.floor(TARGET_BYTES / 40);
    const content = i % 2 === 0 ? binaryContent(rng, size) : textContent(rng, size);
    await writeFile(join(root, dirs[i] ?? '', `big${i}.bin`), content);
    bytes += size;
    files++;
  }
  while (bytes < TARGET_BYTES) {
    const size = Math.floor(1024 * Math.pow(256, rng.next() / 0x1_0000_0000));
    const kind = rng.below(10);
    const content = kind < 4 ? textContent(rng, size) : kind < 7 ? binaryContent(rng, size) : randomContent(rng, size);
    const dir = dirs[rng.below(dirs.length)] ?? '';
    const file = join(root, dir, `f${files}.${kind < 4 ? 'txt' : 'bin'}`);
    await writeFile(file, content, { mode: rng.below(5) === 0 ? 0o755 : 0o644 });
    if (rng.below(50) === 0) await symlink(`f${files}.${kind < 4 ? 'txt' : 'bin'}`, join(root, dir, `link${files}`));
    bytes += size;
    files++;
  }
  return { files, bytes };
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const r = await fn();
  return [(performance.now() - t0) / 1000, r];
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'bench-apk-pack-'));
  try {
    const tree = join(work, 'tree');
    await mkdir(tree);
    const [genSecs, gen] = await timed(() => generateTree(tree));
    console.log(`tree: ${gen.files} files, ${(gen.bytes / 1e6).toFixed(1)} MB (generated in ${genSecs.toFixed(1)} s); ${availableParallelism()} CPUs`);
    await generateSigningKey(join(work, 'bench.rsa'), { bits: 2048 });
    const key = await loadSigningKey(join(work, 'bench.rsa'));
    const info = {
      pkgname: 'bench',
      pkgver: '1.0-r0',
      arch: 'x86_64',
      license: ['MIT'],
      depend: [],
      provides: [],
      replaces: [],
      installIf: [],
      triggers: [],
    };
    const ours = (concurrency?: number) =>
      writeApk({
        sourceDir: tree,
        outputPath: join(work, 'bench-1.0-r0.apk'),
        signingKey: key,
        sourceDateEpoch: 1700000000,
        info,
        ...(concurrency ? { concurrency } : {}),
      });
    const tarGz = join(work, 'tree.tar.gz');
    // A constant script; the paths are positional arguments, so nothing is built from data.
    const baseline = () => execa('sh', ['-c', 'tar -cf - -C "$1" . | gzip -6 > "$2"', 'sh', tree, tarGz]);

    // Warm the page cache for both contenders alike.
    await execa('tar', ['-cf', '/dev/null', '-C', tree, '.']);

    let bestOurs = Infinity;
    let bestTar = Infinity;
    const roundRatios: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const [o] = await timed(() => ours());
      const [t] = await timed(() => baseline());
      bestOurs = Math.min(bestOurs, o);
      bestTar = Math.min(bestTar, t);
      roundRatios.push(t / o);
      console.log(`round ${round + 1}: ours ${o.toFixed(2)} s, tar|gzip ${t.toFixed(2)} s, ratio ${(t / o).toFixed(2)}x`);
    }
    // For information: the same packaging with a single deflate job in flight (no parallel compression).
    const [serial] = await timed(() => ours(1));
    const result = await ours();
    const summary = await verifyApk(result.path, new Map([[key.keyName, key.publicKey]]));
    const apkSize = (await stat(result.path)).size;
    const tarSize = (await stat(tarGz)).size;
    console.log(`verified: ${summary.entries} entries, datahash ok`);
    console.log(`ours (best of ${ROUNDS}):       ${bestOurs.toFixed(2)} s`);
    console.log(`tar | gzip -6 (best of ${ROUNDS}): ${bestTar.toFixed(2)} s`);
    console.log(`ratio (tar|gzip time / ours time): ${(bestTar / bestOurs).toFixed(2)}x  (> 1 means ours is faster)`);
    const median = [...roundRatios].sort((a, b) => a - b)[Math.floor(roundRatios.length / 2)] ?? 0;
    console.log(`median per-round ratio:             ${median.toFixed(2)}x`);
    console.log(`ours with 1 deflate job in flight:  ${serial.toFixed(2)} s (ratio ${(bestTar / serial).toFixed(2)}x)`);
    console.log(`output size: ours ${(apkSize / 1e6).toFixed(2)} MB, tar|gzip ${(tarSize / 1e6).toFixed(2)} MB (${((apkSize / tarSize - 1) * 100).toFixed(2)}%)`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
