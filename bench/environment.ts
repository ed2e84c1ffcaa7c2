// Build roots: cold creation vs warm reuse of a cached root (goal: warm ≤ 100 ms), and APK install throughput
// (MB/s of installed data) vs `tar -xzf` of the same tree, measured side by side in the same run. When the
// test suite's Debian base is cached, also: warm reuse of a Debian-based root, and what a per-build copy of
// a root would cost (hard-link copy, full copy, ext4 image) next to the read-only bind the runners use.
// Sections 1 and 2 run in /dev/shm when it exists (BENCH_DIR overrides), so the comparison measures the
// extraction work rather than this machine's disk write-back; section 3 runs beside the cached base (hard links
// cannot cross filesystems). BENCH_QUICK=1 uses ~20 MB of package data instead of ~100 MB.
// Section 4 (network to the Debian archive, BENCH_DEBIAN=0 skips it): a new package list (Wolfi names) on the
// cached plain bookworm base, layered by apt, vs a fresh mmdebstrap of the same Debian packages, both with
// every .deb already in the download cache (goal: layered ≤ 15 s and ≥ 5x faster).
//
//   node bench/environment.ts
import { execa } from 'execa';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installPackages } from '../src/environment/apk/install.ts';
import { RootProvider } from '../src/environment/root-provider.ts';
import { buildPackage, buildRepo, makeKey, type PackageSpec } from '../test/environment/repo.ts';
import { DEBIAN_BASE, PLAIN_DEBIAN_BASE, seedPlainBase, SHARED_ROOT_CACHE } from '../test/environment/shared-cache.ts';
import type { IndexEntry } from '../src/apk/index.ts';
import { Rng } from './lib/rng.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const PACKAGES = QUICK ? 8 : 20;
const BYTES_PER_PACKAGE = QUICK ? 2.5e6 : 5e6;
const ROUNDS = QUICK ? 2 : 3;
const WARM_ROUNDS = 15;
const ARCH = 'x86_64';


const WORDS = 'the of and to in is that for it as was with be by on not package build sandbox signature archive index stream'.split(' ');

/** Text compresses ~3:1, the "binary" ~1.7:1: roughly what real packages hold. */
function content(rng: Rng, size: number): string {
  if (rng.below(2) === 0) {
    let s = '';
    while (s.length < size) s += `${WORDS[rng.below(WORDS.length)]}${rng.below(7) === 0 ? rng.below(1000) : ''} `;
    return s.slice(0, size);
  }
  const buf = Buffer.alloc(size);
  for (let i = 0; i < size; i++) buf[i] = rng.below(4) === 0 ? rng.next() & 0xff : rng.below(16);
  return buf.toString('latin1');
}

/** Files of one package: log-uniform 1 KiB..128 KiB, a few directories deep. */
function packageFiles(rng: Rng, name: string, bytes: number): Record<string, string> {
  const files: Record<string, string> = { 'usr/': '', 'usr/lib/': '', [`usr/lib/${name}/`]: '' };
  let total = 0;
  let n = 0;
  while (total < bytes) {
    const dir = `usr/lib/${name}/d${n % 8}/`;
    files[dir] = '';
    const size = Math.floor(1024 * Math.pow(128, rng.next() / 0x1_0000_0000));
    files[`${dir}f${n}`] = content(rng, size);
    total += size;
    n++;
  }
  return files;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  }
  return total;
}

function ms(x: number): string {
  return `${x.toFixed(x < 10 ? 2 : 0)} ms`;
}

async function fastDir(): Promise<string> {
  if (process.env.BENCH_DIR) return process.env.BENCH_DIR;
  return (await stat('/dev/shm').then((s) => s.isDirectory(), () => false)) ? '/dev/shm' : tmpdir();
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(await fastDir(), 'bench-environment-'));
  const diskWork = await mkdtemp(join(tmpdir(), 'bench-environment-'));
  console.log(`work dir: ${work}`);
  try {
    const key = await makeKey(join(work, 'keys'));
    const rng = new Rng(0xbeef);
    const repo = join(work, 'repo');
    const specs: PackageSpec[] = [];
    for (let i = 0; i < PACKAGES; i++) {
      specs.push({ name: `pkg${i}`, version: '1.0-r0', depends: i > 0 ? [`pkg${i - 1}`] : [], files: packageFiles(rng, `pkg${i}`, BYTES_PER_PACKAGE) });
    }
    await buildRepo(repo, specs, key.key);
    const spec = { repositories: [repo], keyring: [key.publicPath], packages: [`pkg${PACKAGES - 1}`], arch: ARCH };
    console.log(`repository: ${PACKAGES} packages in a dependency chain, ${((PACKAGES * BYTES_PER_PACKAGE) / 1e6).toFixed(0)} MB of files`);

    // 1. Cold creation vs warm reuse.
    const cold: number[] = [];
    let cacheDir = '';
    for (let r = 0; r < ROUNDS; r++) {
      cacheDir = join(work, `cache${r}`);
      cold.push(await timed(() => new RootProvider({ cacheDir }).prepare(spec, () => undefined)));
    }
    const warm: number[] = [];
    for (let r = 0; r < WARM_ROUNDS; r++) {
      const provider = new RootProvider({ cacheDir });
      warm.push(await timed(() => provider.prepare(spec, () => undefined)));
      if (provider.stats.requestHits !== 1) throw new Error('warm run did not hit the cache');
    }
    const c = median(cold);
    const w = median(warm);
    console.log('\nroot ready (APK-only root, median):');
    console.log(`  cold (resolve, verify, extract, accounts): ${ms(c)}`);
    console.log(`  warm (cache hit):                          ${ms(w)}   goal ≤ 100 ms: ${w <= 100 ? 'met' : 'NOT met'}`);
    console.log(`  warm / cold = ${(w / c).toFixed(4)}  (cold is ${(c / w).toFixed(0)}x slower)`);

    // 2. Install throughput vs tar -xzf of the same tree.
    const treeRoot = join(work, 'tree');
    const all: Record<string, string> = {};
    for (const s of specs) Object.assign(all, s.files);
    const bigRepo = join(work, 'big');
    const entry: IndexEntry = await buildPackage(bigRepo, { name: 'big', version: '1.0-r0', files: all }, key.key);
    const apk = join(bigRepo, ARCH, 'big-1.0-r0.apk');
    // The same tree, for tar: extracted once by the installer itself, then packed with tar -czf.
    await mkdir(treeRoot);
    await installPackages({ root: treeRoot, packages: [{ entry, file: apk, repository: bigRepo }], keyring: new Map(), ignoreSignatures: true, runScriptlets: false, log: () => undefined });
    await rm(join(treeRoot, 'lib'), { recursive: true, force: true });
    const tarball = join(work, 'tree.tar.gz');
    await execa('tar', ['-czf', tarball, '-C', treeRoot, 'usr']);
    const bytes = await treeBytes(treeRoot);
    const keyring = new Map([[key.key.keyName, key.key.publicKey]]);
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const a = join(work, `install${r}`);
      const b = join(work, `untar${r}`);
      await mkdir(a);
      await mkdir(b);
      ours.push(await timed(() => installPackages({ root: a, packages: [{ entry, file: apk, repository: bigRepo }], keyring, ignoreSignatures: false, runScriptlets: false, log: () => undefined })));
      theirs.push(await timed(() => execa('tar', ['-xzf', tarball, '-C', b])));
      await rm(a, { recursive: true, force: true });
      await rm(b, { recursive: true, force: true });
    }
    const mbps = (t: number): string => `${(bytes / 1e6 / (t / 1000)).toFixed(0)} MB/s`;
    const o = median(ours);
    const t = median(theirs);
    console.log(`\ninstall of one ${(bytes / 1e6).toFixed(0)} MB package (${Object.keys(all).length} entries, median of ${ROUNDS}):`);
    console.log(`  builder (verify signature + datahash, path-safe extract, installed db): ${ms(o)}  ${mbps(o)}`);
    console.log(`  tar -xzf of the same tree:                                              ${ms(t)}  ${mbps(t)}`);
    console.log(`  builder / tar time = ${(o / t).toFixed(2)}`);

    if (process.env.BENCH_DEBIAN !== '0') await layeredVsFresh(diskWork);

    // 3. Debian-based roots, when the test suite's base is cached (no network here).
    const provider = new RootProvider({ cacheDir: SHARED_ROOT_CACHE });
    const bases = (await provider.cache.list()).filter((r) => r.kind === 'base' && r.description === DEBIAN_BASE);
    if (bases.length === 0) {
      console.log(`\n(no cached ${DEBIAN_BASE} in ${SHARED_ROOT_CACHE}: run the environment tests first for the Debian figures)`);
      return;
    }
    const debSpec = { repositories: [DEBIAN_BASE], keyring: [], packages: ['gcc'], arch: ARCH };
    await provider.prepare(debSpec, () => undefined);
    const debWarm: number[] = [];
    for (let r = 0; r < WARM_ROUNDS; r++) debWarm.push(await timed(() => new RootProvider({ cacheDir: SHARED_ROOT_CACHE }).prepare(debSpec, () => undefined)));
    const base = join(bases[0]!.dir, 'rootfs');
    const hardlink: number[] = [];
    const full: number[] = [];
    const image: number[] = [];
    // One round of the slow ones: they only need an order of magnitude.
    for (let r = 0; r < 1; r++) {
      const a = join(diskWork, `hl${r}`);
      const b = join(diskWork, `cp${r}`);
      hardlink.push(await timed(() => execa('cp', ['-a', '-l', base, a])));
      full.push(await timed(() => execa('cp', ['-a', '--reflink=auto', base, b])));
      const img = join(diskWork, `root${r}.ext4`);
      await writeFile(img, '');
      await execa('truncate', ['-s', '2G', img]);
      image.push(await timed(() => execa('mkfs.ext4', ['-q', '-F', '-d', base, img])));
      await rm(a, { recursive: true, force: true });
      await rm(b, { recursive: true, force: true });
      await rm(img, { force: true });
    }
    const size = bases[0]!.size;
    console.log(`\n${DEBIAN_BASE} (${(size / 1e6).toFixed(0)} MB), on disk beside the cache:`);
    console.log(`  warm root ready (cache hit):       ${ms(median(debWarm))}`);
    console.log('  per-build cost of isolating the root from the build:');
    console.log('    read-only bind (bubblewrap):     0 ms (what the runners use)');
    console.log(`    hard-link copy (cp -al):         ${ms(median(hardlink))}`);
    console.log(`    full copy (cp -a):               ${ms(median(full))}`);
    console.log(`    ext4 image (mkfs.ext4 -d):       ${ms(median(image))}  (QEMU: cache it per root digest)`);
  } finally {
    await rm(work, { recursive: true, force: true });
    await rm(diskWork, { recursive: true, force: true });
  }
}

/** Section 4: a layer over the cached base vs a fresh mmdebstrap of the same packages, downloads cached. */
async function layeredVsFresh(dir: string): Promise<void> {
  const wolfi = ['build-base', 'zlib-dev', 'samurai', 'cmake', 'git'];
  const debs = join(dir, 'downloads');
  // The plain base's essential .debs, so the fresh mmdebstrap downloads nothing either.
  await seedPlainBase(join(dir, 'warm'));
  await mkdir(join(debs, 'debs'), { recursive: true });
  await execa('sh', ['-c', 'cp -l "$0"/*.deb "$1"/ 2>/dev/null || true', join(SHARED_ROOT_CACHE, 'downloads', 'debs'), join(debs, 'debs')]);
  // Warm-up layer: fills the download cache with this list's .debs (and tells us its Debian packages).
  const lines: string[] = [];
  await new RootProvider({ cacheDir: join(dir, 'warm'), apkCacheDir: debs }).prepare({ repositories: [PLAIN_DEBIAN_BASE], keyring: [], packages: wolfi, arch: ARCH }, (l) => lines.push(l));
  const debian = [...new Set(lines.flatMap((l) => /: built-in map → Debian (.+)$/.exec(l)?.[1]?.split(', ') ?? []))].sort();

  await seedPlainBase(join(dir, 'layered'));
  const layeredProvider = new RootProvider({ cacheDir: join(dir, 'layered'), apkCacheDir: debs });
  const layered = await timed(() => layeredProvider.prepare({ repositories: [PLAIN_DEBIAN_BASE], keyring: [], packages: wolfi, arch: ARCH }, () => undefined));
  const freshProvider = new RootProvider({ cacheDir: join(dir, 'fresh'), apkCacheDir: debs });
  const fresh = await timed(() => freshProvider.prepare({ repositories: [`debian:bookworm:${debian.join(',')}`], keyring: [], packages: [], arch: ARCH }, () => undefined));
  console.log(`
new package list on Debian bookworm (${wolfi.join(' ')} → ${debian.join(' ')}), every .deb cached:`);
  console.log(`  layered on the cached base (copy + apt-get install): ${(layered / 1000).toFixed(1)} s  (${layeredProvider.stats.debsDownloaded} .debs downloaded)  goal ≤ 15 s: ${layered <= 15000 ? 'met' : 'NOT met'}`);
  console.log(`  fresh mmdebstrap of the same packages:               ${(fresh / 1000).toFixed(1)} s  (${freshProvider.stats.debsDownloaded} .debs downloaded)`);
  console.log(`  fresh / layered = ${(fresh / layered).toFixed(1)}x  goal ≥ 5x: ${fresh / layered >= 5 ? 'met' : 'NOT met'}`);
}

await main();
