// Observability benchmark, measured side by side in the same run (QEMU runner, TCG here):
//  (a) the same VM build with the hook (the default base initramfs) and without it (the same archive minus the
//      hook): start → steps (gcc on a few files, a loop of programs) → retrieval → terminate, alternating
//      rounds; ratio of the medians (goal ≤ 1.10×), with the hook's own start-up time from the guest console;
//  (b) how many events per second the hook takes without loss: programs executed at full speed (are they all
//      recorded?), then UDP datagrams at increasing rates, each one a kprobe event through the converter, with
//      the hook restarted for every rate so that lost events are counted per rate.
// node bench/observe.ts   (BENCH_QUICK=1 for a much smaller run; the kernel from scripts/fetch-kernel.sh)
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureSealedBaseInitramfs } from '../src/runners/qemu/seal.ts';
import { collectGuestObservability } from '../src/observe/collect.ts';
import type { ObservabilityResult } from '../src/observe/recording.ts';
import { HOOK_PATH } from '../src/observe/guest-files.ts';
import { QemuRunner } from '../src/runners/qemu/runner.ts';
import { initramfsWithoutHook } from '../test/observe/helpers.ts';
import { debianCompilerRoot, kernelEnv, podFor, SHARED_CACHE, testKernel } from '../test/runners/qemu/helpers.ts';

const QUICK = process.env.BENCH_QUICK === '1';
const PAIRS = QUICK ? 1 : 3;
const C_FILES = QUICK ? 3 : 5;
const LOOP = QUICK ? 50 : 150;
const EXEC_BURST = QUICK ? 50 : 100;
const UDP_RATES = QUICK ? [10_000, 0] : [10_000, 20_000, 0];
const UDP_SECONDS = QUICK ? 1 : 2;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

const BUILD_STEP = `set -e
mkdir -p /tmp/w && cd /tmp/w
i=1; while [ $i -le ${C_FILES} ]; do printf 'int f%d(int x) { return x * %d + 1; }\\n' $i $i >f$i.c; i=$((i + 1)); done
printf 'int main(void) { return 0; }\\n' >main.c
ls *.c | xargs -P 2 -n 1 gcc -O1 -c
gcc -o app *.o
i=0; while [ $i -lt ${LOOP} ]; do /bin/true; i=$((i + 1)); done
./app`;

const env = { PATH: '/usr/bin:/bin', HOME: '/home/build' };

async function runStep(runner: QemuRunner, script: string): Promise<string> {
  let out = '';
  const code = await runner.run(['/bin/sh', '-c', script], { env, workdir: '/home/build', onOutput: (_s, c) => (out += c.toString()) });
  if (code !== 0) throw new Error(`step failed (${code}): ${out.slice(-2000)}`);
  return out;
}

/** Seconds the hook took at boot, from init's console lines (`starting hook` → `starting ssh`). */
async function hookStartSeconds(consoleLog: string | undefined): Promise<number | undefined> {
  if (!consoleLog) return undefined;
  const text = await readFile(consoleLog, 'utf8').catch(() => '');
  const at = (what: string): number | undefined => {
    const m = new RegExp(`builder-init: \\[([\\d.]+)\\] ${what}`).exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const a = at('starting hook observability');
  const b = at('starting ssh');
  return a !== undefined && b !== undefined ? b - a : undefined;
}

interface Round {
  totalMs: number;
  stepMs: number;
  startMs: number;
  collectMs: number;
  hookStart?: number;
  events?: number;
}

async function buildRound(work: string, root: string, initramfs: string, hooked: boolean, step = BUILD_STEP): Promise<Round> {
  const workspace = await mkdtemp(path.join(work, 'ws-'));
  await mkdir(path.join(workspace, 'melange-out'), { recursive: true });
  const runner = new QemuRunner({ artifactDir: SHARED_CACHE, env: kernelEnv(await testKernel()), bootTimeoutMs: 120_000, initramfs, tempDir: work });
  const t0 = performance.now();
  try {
    await runner.start(podFor(root, workspace));
    const t1 = performance.now();
    await runStep(runner, step);
    const t2 = performance.now();
    const hookStart = hooked ? await hookStartSeconds(runner.consoleLog) : undefined;
    const result = await runner.collectObservability();
    if ((result !== null) !== hooked) throw new Error('the hook is not where the benchmark expects it');
    const t3 = performance.now();
    await runner.terminate();
    const t4 = performance.now();
    return { totalMs: t4 - t0, startMs: t1 - t0, stepMs: t2 - t1, collectMs: t3 - t2, hookStart, events: result?.events.length };
  } finally {
    await runner.terminate();
    await rm(workspace, { recursive: true, force: true });
  }
}

/** Sends UDP datagrams at a rate (0: as fast as it can) for some seconds; prints "sent seconds". */
const UDP_SENDER = `#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
  double rate = atof(argv[1]), secs = atof(argv[2]);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(53) };
  inet_pton(AF_INET, "10.0.2.3", &to.sin_addr);
  if (connect(s, (struct sockaddr *)&to, sizeof to) != 0) { perror("connect"); return 1; }
  long n = 0; double t0 = now(), t;
  while ((t = now()) < t0 + secs) {
    long due = rate > 0 ? (long)((t - t0) * rate) : n + 100;
    while (n < due) { send(s, "x", 1, 0); n++; }
    if (rate > 0) { struct timespec pause = { 0, 200000 }; nanosleep(&pause, NULL); }
  }
  printf("%ld %.3f\\n", n, now() - t0);
  return 0;
}`;

interface LoadResult {
  label: string;
  offered: number;
  seconds: number;
  lines: number;
  lost: number;
  recorded?: number;
}

async function loadPhases(work: string, root: string): Promise<LoadResult[]> {
  const workspace = await mkdtemp(path.join(work, 'ws-'));
  await mkdir(path.join(workspace, 'melange-out'), { recursive: true });
  const runner = new QemuRunner({ artifactDir: SHARED_CACHE, env: kernelEnv(await testKernel()), bootTimeoutMs: 120_000, tempDir: work });
  const results: LoadResult[] = [];
  const restart = async (): Promise<void> => {
    const r = await runner.control([HOOK_PATH, 'start']);
    if (r.code !== 0) throw new Error(`hook start failed: ${r.stderr.toString()}`);
  };
  const stop = async (): Promise<ObservabilityResult> => {
    const r = await collectGuestObservability(runner);
    if (!r) throw new Error('no hook');
    return r;
  };
  try {
    await runner.start(podFor(root, workspace));
    await runStep(runner, `cat >/tmp/udp.c <<'EOF'\n${UDP_SENDER}\nEOF\ngcc -O2 -o /tmp/udp /tmp/udp.c`);
    await stop();

    // Programs at full speed, two loops at once (2 vCPUs): is every one of them recorded?
    await restart();
    const out = await runStep(
      runner,
      `t0=$(cut -d' ' -f1 /proc/uptime); for j in 1 2; do (i=0; while [ $i -lt ${EXEC_BURST} ]; do /bin/true; i=$((i + 1)); done) & done; wait; t1=$(cut -d' ' -f1 /proc/uptime); echo "$t0 $t1"`,
    );
    const [t0, t1] = out.trim().split(/\s+/).map(Number) as [number, number];
    const execs = await stop();
    results.push({
      label: 'execs',
      offered: (2 * EXEC_BURST) / (t1 - t0),
      seconds: t1 - t0,
      lines: execs.status.stats?.lines ?? 0,
      lost: execs.status.stats?.lost ?? 0,
      recorded: execs.events.filter((e) => e.type === 'exec' && e.filename === '/bin/true').length,
    });

    for (const rate of UDP_RATES) {
      await restart();
      const [sent, secs] = (await runStep(runner, `/tmp/udp ${rate} ${UDP_SECONDS}`)).trim().split(/\s+/).map(Number) as [number, number];
      const r = await stop();
      results.push({ label: rate > 0 ? `udp @${rate}/s` : 'udp, unpaced', offered: sent / secs, seconds: secs, lines: r.status.stats?.lines ?? 0, lost: r.status.stats?.lost ?? 0 });
    }
  } finally {
    await runner.terminate();
    await rm(workspace, { recursive: true, force: true });
  }
  return results;
}

const work = await mkdtemp(path.join(os.tmpdir(), 'builder-bench-observe-'));
try {
  const root = await debianCompilerRoot();
  // Both sides boot a given archive (the default one has the hook), so that they take the same path in the
  // runner and differ only by the hook.
  const hook = (await ensureSealedBaseInitramfs({ cacheDir: SHARED_CACHE })).path;
  const noHook = await initramfsWithoutHook();
  // One warm-up boot (root image and module archive cached afterwards).
  await buildRound(work, root, noHook, false, 'true');

  const withHook: Round[] = [];
  const without: Round[] = [];
  for (let i = 0; i < PAIRS; i++) {
    // Alternate which goes first, so that drift on the host does not favour one side.
    if (i % 2 === 0) {
      withHook.push(await buildRound(work, root, hook, true));
      without.push(await buildRound(work, root, noHook, false));
    } else {
      without.push(await buildRound(work, root, noHook, false));
      withHook.push(await buildRound(work, root, hook, true));
    }
  }
  const load = await loadPhases(work, root);

  const m = (rs: Round[], k: 'totalMs' | 'stepMs' | 'startMs' | 'collectMs'): number => median(rs.map((r) => r[k]));
  console.log(`Observability benchmark (${QUICK ? 'quick' : 'full'}; ${PAIRS} pair(s) of VM builds; Debian root with gcc; TCG)`);
  console.log('');
  console.log(`(a) the same VM build with and without the hook: ${C_FILES} C files with gcc (-P 2), a link, ${LOOP} programs in a loop`);
  console.log(`    with hook     total ${sec(m(withHook, 'totalMs'))}   [${withHook.map((r) => sec(r.totalMs)).join(', ')}]`);
  console.log(`    without hook  total ${sec(m(without, 'totalMs'))}   [${without.map((r) => sec(r.totalMs)).join(', ')}]`);
  const pairRatios = withHook.map((r, i) => r.totalMs / without[i]!.totalMs);
  console.log(`    ratio with / without: ${(m(withHook, 'totalMs') / m(without, 'totalMs')).toFixed(3)}× (medians), per pair [${pairRatios.map((r) => r.toFixed(3)).join(', ')}], best times ${(Math.min(...withHook.map((r) => r.totalMs)) / Math.min(...without.map((r) => r.totalMs))).toFixed(3)}×   (goal ≤ 1.10×)`);
  console.log(
    `    phases (medians, with / without): start ${sec(m(withHook, 'startMs'))} / ${sec(m(without, 'startMs'))}, steps ${sec(m(withHook, 'stepMs'))} / ${sec(m(without, 'stepMs'))}` +
      ` (${(m(withHook, 'stepMs') / m(without, 'stepMs')).toFixed(3)}×), retrieval ${sec(m(withHook, 'collectMs'))} / ${sec(m(without, 'collectMs'))}`,
  );
  const hookStarts = withHook.map((r) => r.hookStart).filter((x): x is number => x !== undefined);
  if (hookStarts.length) console.log(`    the hook's start at boot (guest clock): median ${median(hookStarts).toFixed(2)} s; events per build: ${withHook.map((r) => r.events).join(', ')}`);
  console.log('');
  console.log('(b) event volume the hook takes (trace lines through the converter per second, and what was lost)');
  for (const r of load) {
    const extra = r.recorded !== undefined ? `, ${r.recorded}/${Math.round(r.offered * r.seconds)} programs recorded` : '';
    console.log(
      `    ${r.label.padEnd(16)} offered ${Math.round(r.offered).toString().padStart(6)}/s for ${r.seconds.toFixed(1)} s: ${r.lines} trace lines (${Math.round(r.lines / r.seconds)}/s), lost ${r.lost}${extra}`,
    );
  }
  const clean = load.filter((r) => r.label.startsWith('udp') && r.lost === 0).map((r) => r.lines / r.seconds);
  console.log(`    sustained without loss: ${clean.length ? `${Math.round(Math.max(...clean))} trace events/s` : 'none of the rates'}`);
} finally {
  await rm(work, { recursive: true, force: true });
}
