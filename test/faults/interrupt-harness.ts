// Interrupts a real `builder` command at a chosen moment and lists what it left behind. Each run gets its own
// TMPDIR and a marker in its environment, so leftovers are this run's alone (other builds on the machine
// do not count). Zombies are not leftovers: this machine's init reaps orphans late.
import { execa } from 'execa';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPublicKey } from 'node:crypto';
import { expect } from 'vitest';
import { readApkIndex } from '../../src/apk/index.ts';
import { verifyApk, verifyApkIndex } from '../../src/apk/verify.ts';
import { BUILDER, REPO } from '../helpers/cli.ts';

/** mulberry32: a small seeded generator, so a failing moment can be replayed with the same seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface InterruptCase {
  args: string[];
  env: Record<string, string>;
  /**
   * Milliseconds after the command's first output (by then it has loaded and parsed its flags, and the work
   * that must be cleaned up is under way); null runs to the end.
   */
  delayMs: number | null;
  signal: 'SIGINT' | 'SIGTERM';
  /** The run must end within this long after the signal. */
  exitWithinMs: number;
}

export interface InterruptOutcome {
  exitCode: number | undefined;
  killedBy: string | undefined;
  output: string;
  /** Milliseconds from the first output to exit. */
  elapsedMs: number;
  /** Live processes still carrying this run's marker, as `pid cmdline`. */
  processes: string[];
  /** What is left in the run's own TMPDIR. */
  tempEntries: string[];
}

/** Live (not zombie) processes whose environment or command line carries `marker`. */
export async function liveProcessesMarked(marker: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      if (/^\d+ \(.*\) Z/s.test(stat)) continue;
      const [environ, cmdline] = await Promise.all([readFile(`/proc/${name}/environ`), readFile(`/proc/${name}/cmdline`)]);
      if (environ.includes(marker) || cmdline.includes(marker)) found.push(`${name} ${cmdline.toString().replaceAll('\0', ' ').trim()}`);
    } catch {
      // gone while looking
    }
  }
  return found;
}

export async function runInterrupted(c: InterruptCase): Promise<InterruptOutcome> {
  const tmp = await mkdtemp(join(tmpdir(), 'builder-fault-'));
  try {
    const marker = tmp;
    const started = Date.now();
    const child = execa(process.execPath, [BUILDER, ...c.args], {
      cwd: REPO,
      env: { CI: 'true', ...c.env, TMPDIR: tmp, BUILDER_FAULT_RUN: marker },
      reject: false,
      all: true,
      stdin: 'ignore',
    });
    let timer: NodeJS.Timeout | undefined;
    let firstOutput: number | undefined;
    child.all?.once('data', () => {
      firstOutput = Date.now();
      if (c.delayMs !== null) timer = setTimeout(() => child.kill(c.signal), c.delayMs);
    });
    const deadline = setTimeout(() => child.kill('SIGKILL'), (c.delayMs ?? 0) + c.exitWithinMs);
    const result = await child;
    clearTimeout(timer);
    clearTimeout(deadline);
    const elapsedMs = Date.now() - (firstOutput ?? started);
    // Sandboxes die with their parent; give the kernel a moment to take them down before counting.
    let processes = await liveProcessesMarked(marker);
    for (let i = 0; i < 50 && processes.length > 0; i++) {
      await sleep(100);
      processes = await liveProcessesMarked(marker);
    }
    return {
      exitCode: result.exitCode,
      killedBy: result.signal ?? undefined,
      output: String(result.all ?? ''),
      elapsedMs,
      processes,
      tempEntries: (await readdir(tmp, { recursive: true })).map(String).sort(),
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export interface BuildOutputs {
  out: string;
  /** XDG_CACHE_HOME of the runs (its root cache must hold no temp dir or lock). */
  cache: string;
  /** Every path the out dir may hold (relative). */
  final: ReadonlySet<string>;
  publicKey: string;
}

/** What must hold after any build, interrupted or not. */
export async function expectBuildLeftoversNone(outcome: InterruptOutcome, o: BuildOutputs, what: string): Promise<void> {
  const context = `${what}\n${outcome.output.split('\n').slice(-15).join('\n')}`;
  expect(outcome.processes, context).toEqual([]);
  expect(outcome.tempEntries, context).toEqual([]);
  // An interrupted build exits 130 after cleaning up; one the signal reached before the handler was installed
  // dies by it; one that had already finished exits 0.
  expect(outcome.exitCode === 130 || outcome.exitCode === 0 || outcome.killedBy !== undefined, context).toBe(true);
  const files = (await readdir(o.out, { recursive: true })).map(String);
  expect(files.filter((f) => !o.final.has(f)), context).toEqual([]);
  const keyring = new Map([[basename(o.publicKey), createPublicKey(await readFile(o.publicKey))]]);
  for (const index of files.filter((f) => f.endsWith('/APKINDEX.tar.gz'))) {
    await verifyApkIndex(join(o.out, index), keyring);
    for (const e of (await readApkIndex(join(o.out, index))).entries) {
      await verifyApk(join(o.out, dirname(index), `${e.pkgname}-${e.pkgver}.apk`), keyring);
    }
  }
  for (const sub of ['builder-roots/tmp', 'builder-roots/locks']) {
    expect(await readdir(join(o.cache, sub)).catch(() => []), `${context}\n${sub}`).toEqual([]);
  }
}
