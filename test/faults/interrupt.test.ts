// Ctrl-C and SIGTERM at random moments of a Bubblewrap build leave nothing behind: no live process, no temp
// dir, no partial output, and the out dir's index stays valid. Seeded (BUILDER_FAULT_SEED replays a run) and
// bounded: the moments are spread over one measured build.
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { builder, REPO } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { expectBuildLeftoversNone, type InterruptOutcome, runInterrupted, seededRandom } from './interrupt-harness.ts';

const tempDir = useTempDirs();
const SEED = Number(process.env.BUILDER_FAULT_SEED ?? 20261208);
const MOMENTS = 20;
const KEYS = join(REPO, 'node_modules', '.cache', 'builder-test-keys');
const FINAL = new Set(['x86_64', 'x86_64/APKINDEX.tar.gz', 'x86_64/hello-1.0.0-r0.apk', 'x86_64/hello-doc-1.0.0-r0.apk']);

beforeAll(async () => {
  await mkdir(KEYS, { recursive: true });
  if (!(await stat(join(KEYS, 'test.rsa')).then(() => true, () => false))) {
    const r = await builder(['keygen', join(KEYS, 'test')]);
    expect(r.exitCode, r.all).toBe(0);
  }
});

function expectNoLeftovers(outcome: InterruptOutcome, out: string, cache: string, what: string): Promise<void> {
  return expectBuildLeftoversNone(outcome, { out, cache, final: FINAL, publicKey: join(KEYS, 'test.rsa.pub') }, what);
}

describe('interrupting builder build (bubblewrap)', () => {
  it(`leaves nothing behind at ${MOMENTS} random moments (seed ${SEED})`, async () => {
    const out = await tempDir();
    const cache = await tempDir();
    const args = ['build', 'examples/hello/hello.yaml', '--runner', 'bubblewrap', '--out-dir', out, '--signing-key', join(KEYS, 'test.rsa')];
    const env = { SOURCE_DATE_EPOCH: '1700000000', XDG_CACHE_HOME: cache };
    // One whole build: the span the moments are drawn from, and a valid index for the interrupted runs to keep.
    const whole = await runInterrupted({ args, env, delayMs: null, signal: 'SIGINT', exitWithinMs: 120_000 });
    expect(whole.exitCode, whole.output).toBe(0);
    await expectNoLeftovers(whole, out, cache, 'uninterrupted build');

    const random = seededRandom(SEED);
    const outcomes: string[] = [];
    for (let i = 0; i < MOMENTS; i++) {
      const delayMs = Math.floor(random() * whole.elapsedMs * 1.1);
      const signal = random() < 0.5 ? 'SIGINT' : 'SIGTERM';
      const outcome = await runInterrupted({ args, env, delayMs, signal, exitWithinMs: 60_000 });
      outcomes.push(`${signal}@${delayMs}ms→${outcome.exitCode ?? outcome.killedBy}`);
      await expectNoLeftovers(outcome, out, cache, `moment ${i}: ${signal} after ${delayMs} ms (seed ${SEED})`);
    }
    // The moments must actually have interrupted builds, not only missed them.
    expect(outcomes.filter((o) => o.endsWith('→130')).length, outcomes.join(', ')).toBeGreaterThanOrEqual(MOMENTS / 4);
  }, 600_000);
});

describe('interrupting builder test (bubblewrap)', () => {
  it('leaves nothing behind at 8 random moments', async () => {
    const { RootProvider } = await import('../../src/environment/root-provider.ts');
    const { DEBIAN_BASE, SHARED_ROOT_CACHE } = await import('../environment/shared-cache.ts');
    // The shared Debian base, used read-only as a dir: base; the roots made from it go to a private cache.
    const base = await new RootProvider({ cacheDir: SHARED_ROOT_CACHE }).prepare({ repositories: [DEBIAN_BASE], keyring: [], packages: [], arch: 'x86_64' }, () => undefined);
    const out = await tempDir();
    const cache = await tempDir();
    const env = { SOURCE_DATE_EPOCH: '1700000000', XDG_CACHE_HOME: cache };
    const built = await builder(['build', 'examples/hello/hello.yaml', '--runner', 'bubblewrap', '--out-dir', out, '--signing-key', join(KEYS, 'test.rsa')], { env });
    expect(built.exitCode, built.all).toBe(0);
    const args = ['test', 'examples/hello/hello.yaml', '--runner', 'bubblewrap', '--base', `dir:${base.directory}`, '--root-cache-dir', join(cache, 'builder-roots'), '--out-dir', out, '--keyring-append', join(KEYS, 'test.rsa.pub')];
    const whole = await runInterrupted({ args, env, delayMs: null, signal: 'SIGINT', exitWithinMs: 300_000 });
    expect(whole.exitCode, whole.output).toBe(0);
    await expectNoLeftovers(whole, out, cache, 'uninterrupted test');
    const random = seededRandom(SEED + 1);
    for (let i = 0; i < 8; i++) {
      const delayMs = Math.floor(random() * whole.elapsedMs * 1.1);
      const signal = random() < 0.5 ? 'SIGINT' : 'SIGTERM';
      const outcome = await runInterrupted({ args, env, delayMs, signal, exitWithinMs: 60_000 });
      await expectNoLeftovers(outcome, out, cache, `test moment ${i}: ${signal} after ${delayMs} ms (seed ${SEED + 1})`);
    }
  }, 600_000);
});

describe('interrupting builder build-initramfs (debian)', () => {
  it('leaves nothing behind at 5 random moments', async () => {
    const { gunzipSync } = await import('node:zlib');
    const { rm } = await import('node:fs/promises');
    const cacheDir = await tempDir();
    const outFile = join(await tempDir(), 'initramfs.cpio.gz');
    const args = ['build-initramfs', '--cache-dir', cacheDir, '-o', outFile];
    const check = async (outcome: InterruptOutcome, what: string): Promise<void> => {
      const context = `${what}\n${outcome.output.split('\n').slice(-15).join('\n')}`;
      expect(outcome.processes, context).toEqual([]);
      expect(outcome.tempEntries, context).toEqual([]);
      // Complete archives only, in the cache and at -o.
      const cached = (await readdir(join(cacheDir, 'initramfs')).catch(() => [] as string[])).filter((n) => n !== 'downloads');
      for (const name of cached) {
        expect(name, context).toMatch(/^base-[0-9a-f]{32}\.cpio\.gz$/);
        expect(gunzipSync(await readFile(join(cacheDir, 'initramfs', name))).length, context).toBeGreaterThan(0);
      }
      const written = await readFile(outFile).catch(() => undefined);
      if (written !== undefined) expect(gunzipSync(written).length, context).toBeGreaterThan(0);
      expect((await readdir(join(outFile, '..'))).filter((n) => n !== 'initramfs.cpio.gz'), context).toEqual([]);
    };
    const whole = await runInterrupted({ args, env: {}, delayMs: null, signal: 'SIGINT', exitWithinMs: 300_000 });
    expect(whole.exitCode, whole.output).toBe(0);
    await check(whole, 'uninterrupted build-initramfs');
    const random = seededRandom(SEED + 2);
    for (let i = 0; i < 5; i++) {
      // Each run makes the archive again (it is cached by its inputs).
      await rm(join(cacheDir, 'initramfs'), { recursive: true, force: true });
      await rm(outFile, { force: true });
      const delayMs = Math.floor(random() * whole.elapsedMs);
      const signal = random() < 0.5 ? 'SIGINT' : 'SIGTERM';
      const outcome = await runInterrupted({ args, env: {}, delayMs, signal, exitWithinMs: 60_000 });
      await check(outcome, `initramfs moment ${i}: ${signal} after ${delayMs} ms (seed ${SEED + 2})`);
    }
  }, 600_000);
});
