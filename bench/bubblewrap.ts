// Per-step cost of BubblewrapRunner.run against a bare bwrap invocation, measured side by side.
//   node bench/bubblewrap.ts            (BENCH_QUICK=1 for a short run)
// Each round runs N no-op steps through the runner (host root, temp workspace, seccomp, full argument list)
// and N raw `bwrap --ro-bind / / --unshare-all --dev /dev --proc /proc true` calls via execa, alternating which
// goes first. A third, informational series runs the runner's exact bwrap argument list through plain execa,
// which separates the runner's own overhead from the cost of the extra sandbox features.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { HostProvider } from '../src/environment/host.ts';
import { BubblewrapRunner } from '../src/runners/bubblewrap.ts';
import { buildSeccompFilter, hostSeccompArch } from '../src/sandbox/seccomp.ts';

const quick = process.env.BENCH_QUICK === '1';
const STEPS = quick ? 5 : 20;
const ROUNDS = quick ? 2 : 7;
const STEP = ['/bin/sh', '-c', 'set -e; true'];
const RAW_ARGS = ['--ro-bind', '/', '/', '--unshare-all', '--dev', '/dev', '--proc', '/proc', 'true'];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < STEPS; i++) await fn();
  return performance.now() - start;
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'builder-bench-bwrap-'));
try {
  const workspaceDir = path.join(dir, 'ws');
  const cacheDir = path.join(dir, 'cache');
  await mkdir(workspaceDir);
  await mkdir(cacheDir);
  const root = await new HostProvider().prepare({ repositories: [], keyring: [], packages: [], arch: '' }, () => {});
  const runner = new BubblewrapRunner();
  const usability = await runner.testUsability();
  if (!usability.usable) throw new Error(usability.reason);
  await runner.start({
    packageName: 'bench', root, workspaceDir, cacheDir, mounts: [], network: false,
    runAs: { uid: 1000, gid: 1000 }, arch: 'x86_64', resources: {}, capabilities: { add: [], drop: [] },
  });
  const { stdout: bwrap } = await execa('sh', ['-c', 'command -v bwrap']);
  const env = { HOME: '/home/build', PATH: '/usr/bin:/bin' };
  const options = { env, workdir: '/home/build', onOutput: () => {} };
  const fullArgs = runner.commandLine(STEP, options);
  const arch = hostSeccompArch();
  const seccomp = arch === undefined ? 'ignore' : buildSeccompFilter(arch);

  const series = {
    runner: async () => {
      const code = await runner.run(STEP, options);
      if (code !== 0) throw new Error(`runner step exited ${code}`);
    },
    raw: async () => {
      await execa(bwrap, RAW_ARGS, { stdin: 'ignore' });
    },
    sameArgs: async () => {
      await execa(bwrap, fullArgs, { stdio: ['ignore', 'pipe', 'pipe', seccomp, 'pipe'] });
    },
  };
  // Warm-up: page cache, execa's lazy imports.
  for (const fn of Object.values(series)) await fn();

  const totals: Record<keyof typeof series, number[]> = { runner: [], raw: [], sameArgs: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const order: (keyof typeof series)[] = round % 2 === 0 ? ['runner', 'raw', 'sameArgs'] : ['raw', 'sameArgs', 'runner'];
    for (const name of order) totals[name].push(await timed(series[name]));
  }
  await runner.terminate();

  const runnerMs = median(totals.runner);
  const rawMs = median(totals.raw);
  const sameArgsMs = median(totals.sameArgs);
  const ratio = runnerMs / rawMs;
  const addedPerStep = (runnerMs - rawMs) / STEPS;
  console.log(`bubblewrap: ${STEPS} no-op steps per series, ${ROUNDS} rounds, medians of round totals`);
  console.log(`  runner.run           ${runnerMs.toFixed(1)} ms  (${(runnerMs / STEPS).toFixed(2)} ms/step)`);
  console.log(`  raw bwrap            ${rawMs.toFixed(1)} ms  (${(rawMs / STEPS).toFixed(2)} ms/step)`);
  console.log(`  runner args, raw     ${sameArgsMs.toFixed(1)} ms  (${(sameArgsMs / STEPS).toFixed(2)} ms/step)  [informational]`);
  console.log(`  ratio runner/raw     ${ratio.toFixed(2)}  (goal <= 1.5)`);
  console.log(`  added per step       ${addedPerStep.toFixed(2)} ms  (goal < 15 ms)`);
  console.log(`  runner vs same args  ${(runnerMs / sameArgsMs).toFixed(2)}  (the runner's own overhead)`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
