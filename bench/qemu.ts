// QEMU runner benchmark, everything measured side by side in the same run:
//  (a) start() to the first step executed in the VM, beside a raw qemu-system-x86_64 boot of the same kernel
//      and initramfs to the SSH banner (as a bzImage and through PVH);
//  (b) per-run injection (keys + archive + initrd copy), beside a plain copy of the base archive;
//  (c) a 100 MB workspace into the VM and back, beside the same tar round trip on the host alone.
// node bench/qemu.ts   (BENCH_QUICK=1 for a much smaller run; QEMU_KERNEL_IMAGE or scripts/fetch-kernel.sh)
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { extractTar } from '../src/archive/safe-extract.ts';
import { ensureSealedBaseInitramfs } from '../src/runners/qemu/seal.ts';
import { readCpio } from '../src/initramfs/cpio.ts';
import { type BootPlan, freePort, qemuArgs } from '../src/runners/qemu/boot.ts';
import { ensureRootImage } from '../src/runners/qemu/disk.ts';
import { destroyFile, moduleArchive, runArchive, writeRunInitrd } from '../src/runners/qemu/inject.ts';
import { locateKernel, moduleLoadOrder } from '../src/runners/qemu/kernel.ts';
import { generateRunKeys } from '../src/runners/qemu/keys.ts';
import { FAST_BOOT_ARGS, machineLayout } from '../src/runners/qemu/machine.ts';
import { findQemuTools, spawnQemu } from '../src/runners/qemu/process.ts';
import { pvhKernel } from '../src/runners/qemu/pvh.ts';
import { QemuRunner, type StartTimings } from '../src/runners/qemu/runner.ts';
import { waitForBanner } from '../src/runners/qemu/ssh.ts';
import { packDirectory } from '../src/runners/qemu/workspace.ts';
import type { PodConfig } from '../src/runners/runner.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const ROUNDS = QUICK ? 2 : 5;
const INJECTIONS = QUICK ? 10 : 30;
const WORKSPACE_MB = QUICK ? 20 : 100;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const ms = (x: number): string => `${x.toFixed(0)} ms`;
const s = (x: number): string => `${(x / 1000).toFixed(2)} s`;

async function kernelImage(): Promise<{ image: string; modules?: string }> {
  if (process.env.QEMU_KERNEL_IMAGE) return { image: process.env.QEMU_KERNEL_IMAGE, modules: process.env.QEMU_KERNEL_MODULES };
  const boot = '/var/tmp/builder-kernel/boot';
  const newest = (await readdir(boot).catch(() => [] as string[])).filter((n) => n.startsWith('vmlinuz-')).sort().at(-1);
  if (!newest) throw new Error('no kernel: run scripts/fetch-kernel.sh (or set QEMU_KERNEL_IMAGE)');
  return { image: path.join(boot, newest) };
}

/** A busybox root, with busybox taken from the base initramfs. */
async function tinyRoot(dir: string, base: string): Promise<string> {
  const root = path.join(dir, 'root');
  for (const d of ['bin', 'etc', 'home/build', 'tmp']) await mkdir(path.join(root, d), { recursive: true });
  for await (const e of readCpio(createReadStream(base).pipe(createGunzip()))) {
    if (e.name === 'bin/busybox') await writeFile(path.join(root, 'bin/busybox'), await e.buffer(), { mode: 0o755 });
  }
  for (const a of ['sh', 'true', 'cat', 'ls']) await symlink('busybox', path.join(root, 'bin', a));
  await writeFile(path.join(root, 'etc/os-release'), 'ID=bench\n');
  return root;
}

function pod(root: string, workspaceDir: string): PodConfig {
  return {
    packageName: 'bench',
    root: { description: `dir:${root}`, mounts: [{ source: root, target: '/', readonly: true }], directory: root },
    workspaceDir,
    cacheDir: workspaceDir,
    mounts: [],
    network: false,
    runAs: { uid: 1000, gid: 1000 },
    arch: 'x86_64',
    resources: {},
    capabilities: { add: [], drop: [] },
  };
}

const work = await mkdtemp(path.join(os.tmpdir(), 'builder-bench-qemu-'));
try {
  const artifactDir = path.join(work, 'cache');
  const { image, modules } = await kernelImage();
  const env = { QEMU_KERNEL_IMAGE: image, ...(modules ? { QEMU_KERNEL_MODULES: modules } : {}) };
  const base = await ensureSealedBaseInitramfs({ cacheDir: artifactDir });
  const root = await tinyRoot(work, base.path);
  const emptyWorkspace = path.join(work, 'ws-empty');
  await mkdir(path.join(emptyWorkspace, 'melange-out'), { recursive: true });
  const tools = await findQemuTools();
  const kernel = await locateKernel({ env });
  const layout = machineLayout('q35', undefined);
  const fragment = await moduleArchive(kernel, await moduleLoadOrder(kernel, layout.modules), artifactDir);
  const rootImage = (await ensureRootImage({ root, artifactDir, log: () => undefined })).path;
  const pvh = await pvhKernel(kernel, artifactDir);
  const cpus = Math.min(2, os.availableParallelism());

  // Warm-up: everything a second build would find cached is cached.
  const warm = new QemuRunner({ artifactDir, env, accel: 'auto' });
  await warm.start(pod(root, emptyWorkspace));
  await warm.terminate();

  /** Raw QEMU with the runner's exact command line, to the SSH banner, no builder code in the loop. */
  async function rawBoot(kernelFile: string): Promise<number> {
    const dir = await mkdtemp(path.join(work, 'raw-'));
    const initrd = path.join(dir, 'initrd');
    await writeRunInitrd(initrd, base.path, fragment, await runArchive(generateRunKeys(), { runAs: { uid: 1000, gid: 1000 }, network: false }));
    const plan: BootPlan = { tools, accel: 'tcg', layout, resources: { cpus, memoryMiB: 2048 }, kernel: kernelFile, initrd, rootImage, network: false, kernelArgs: [], workDir: dir };
    const port = await freePort();
    const started = performance.now();
    const proc = spawnQemu(tools, qemuArgs(plan, port, path.join(dir, 'console.log'), FAST_BOOT_ARGS), { env: { TMPDIR: dir } });
    const socket = await waitForBanner({ port, deadline: started + 120_000, stopped: proc.hasExited });
    const elapsed = performance.now() - started;
    socket?.destroy();
    await proc.stop(2000);
    await rm(dir, { recursive: true, force: true });
    if (!socket) throw new Error('raw boot did not reach the SSH banner');
    return elapsed;
  }

  async function runnerToFirstStep(): Promise<{ total: number; timings: StartTimings; step: number }> {
    const runner = new QemuRunner({ artifactDir, env, accel: 'auto' });
    const started = performance.now();
    try {
      await runner.start(pod(root, emptyWorkspace));
      const before = performance.now();
      const code = await runner.run(['/bin/true'], { env: { PATH: '/bin' }, workdir: '/home/build', onOutput: () => undefined });
      if (code !== 0) throw new Error(`first step exited ${code}`);
      const done = performance.now();
      return { total: done - started, timings: runner.timings!, step: done - before };
    } finally {
      await runner.terminate();
    }
  }

  // (a) start → first step, interleaved with raw boots so that load on this shared machine hits all alike.
  const raw: number[] = [];
  const rawPvh: number[] = [];
  const viaRunner: number[] = [];
  const phases: Record<string, number[]> = { prepare: [], inject: [], boot: [], connect: [], upload: [], 'first step': [] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = [0, 1, 2].map((i) => (i + round) % 3);
    for (const which of order) {
      if (which === 0) raw.push(await rawBoot(kernel.image));
      else if (which === 1 && pvh.path) rawPvh.push(await rawBoot(pvh.path));
      else if (which === 2) {
        const r = await runnerToFirstStep();
        viaRunner.push(r.total);
        phases.prepare!.push(r.timings.prepareMs);
        phases.inject!.push(r.timings.injectMs);
        phases.boot!.push(r.timings.bootMs);
        phases.connect!.push(r.timings.connectMs);
        phases.upload!.push(r.timings.uploadMs);
        phases['first step']!.push(r.step);
      }
    }
  }

  // (b) per-run injection vs copying the base archive alone.
  const injectDir = path.join(work, 'inject');
  await mkdir(injectDir);
  const injections: number[] = [];
  const copies: number[] = [];
  for (let i = 0; i < INJECTIONS; i++) {
    const target = path.join(injectDir, `initrd-${i}`);
    let t = performance.now();
    await copyFile(base.path, `${target}.copy`);
    copies.push(performance.now() - t);
    t = performance.now();
    const keys = generateRunKeys();
    await writeRunInitrd(target, base.path, fragment, await runArchive(keys, { runAs: { uid: 1000, gid: 1000 }, network: false }));
    injections.push(performance.now() - t);
    await destroyFile(target);
    await rm(`${target}.copy`);
  }

  // (c) workspace round trip.
  const bigWorkspace = path.join(work, 'ws-big');
  const out = path.join(bigWorkspace, 'melange-out', 'bench');
  await mkdir(out, { recursive: true });
  const bigFiles = Math.floor((WORKSPACE_MB * 0.95) / 5);
  for (let i = 0; i < bigFiles; i++) await writeFile(path.join(out, `blob-${i}.bin`), randomBytes(5 * 1024 * 1024));
  await mkdir(path.join(out, 'small'));
  const smallFiles = Math.round((WORKSPACE_MB * 0.05 * 1024) / 5);
  for (let i = 0; i < smallFiles; i++) await writeFile(path.join(out, 'small', `f-${i}.txt`), randomBytes(5 * 1024));
  const totalMB = (bigFiles * 5 * 1024 * 1024 + smallFiles * 5 * 1024) / 1e6;

  const hostDest = path.join(work, 'host-roundtrip');
  await mkdir(hostDest);
  let t = performance.now();
  await extractTar(packDirectory(bigWorkspace, { uid: 1000, gid: 1000 }), { dest: hostDest, where: 'bench' });
  const hostRoundTrip = performance.now() - t;

  const runner = new QemuRunner({ artifactDir, env, accel: 'auto' });
  let upload = 0;
  let download = 0;
  try {
    await runner.start(pod(root, bigWorkspace));
    upload = runner.timings!.uploadMs;
    const back = path.join(work, 'vm-roundtrip');
    await mkdir(back);
    t = performance.now();
    await extractTar((await runner.workspaceTar())!, { dest: back, where: 'bench' });
    download = performance.now() - t;
  } finally {
    await runner.terminate();
  }

  const r = median(viaRunner);
  console.log(`QEMU runner benchmark (${QUICK ? 'quick' : 'full'}; ${ROUNDS} rounds; TCG unless KVM probed usable; ${cpus} vCPU)`);
  console.log('');
  console.log('(a) start() → first step executed, vs raw QEMU boot of the same kernel + initramfs to the SSH banner');
  console.log(`    raw boot, bzImage       median ${s(median(raw))}   [${raw.map(s).join(', ')}]`);
  if (rawPvh.length) console.log(`    raw boot, PVH vmlinux   median ${s(median(rawPvh))}   [${rawPvh.map(s).join(', ')}]`);
  else console.log(`    raw boot, PVH vmlinux   n/a (${pvh.path === null ? pvh.reason : ''})`);
  console.log(`    runner → first step     median ${s(r)}   [${viaRunner.map(s).join(', ')}]`);
  console.log(`    ratio runner / raw bzImage boot: ${(r / median(raw)).toFixed(2)}×   (goal ≤ 1.15×; absolute goal ≤ 3.0 s)`);
  if (rawPvh.length) console.log(`    ratio runner / raw PVH boot:     ${(r / median(rawPvh)).toFixed(2)}×`);
  console.log(`    runner phases (medians): ${Object.entries(phases).map(([k, v]) => `${k} ${ms(median(v))}`).join(', ')}`);
  console.log('');
  console.log(`(b) per-run injection (keys, run archive, base + modules + run copy; ${INJECTIONS} runs)`);
  console.log(`    injection median ${ms(median(injections))} (max ${ms(Math.max(...injections))}), plain copy of the base ${ms(median(copies))}`);
  console.log(`    ratio injection / copy: ${(median(injections) / Math.max(median(copies), 0.01)).toFixed(2)}×   (goal ≤ 50 ms)`);
  console.log('');
  console.log(`(c) workspace round trip, ${totalMB.toFixed(0)} MB (${bigFiles} × 5 MB + ${smallFiles} × 5 KB)`);
  console.log(`    into the VM   ${s(upload)}  ${(totalMB / (upload / 1000)).toFixed(1)} MB/s`);
  console.log(`    out of the VM ${s(download)}  ${(totalMB / (download / 1000)).toFixed(1)} MB/s`);
  console.log(`    host-only tar pack + extract ${s(hostRoundTrip)}  ${(totalMB / (hostRoundTrip / 1000)).toFixed(1)} MB/s`);
  console.log(`    ratio VM round trip / host-only: ${((upload + download) / hostRoundTrip).toFixed(2)}×`);
} finally {
  await rm(work, { recursive: true, force: true });
}
