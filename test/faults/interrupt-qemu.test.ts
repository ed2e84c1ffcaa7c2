// Ctrl-C and SIGTERM at random moments of a QEMU build leave nothing behind: no QEMU or ssh process, nothing
// in the run's TMPDIR (workspace, injected initrd with the run's key), no partial output, a valid index.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { debianCompilerRoot, kernelEnv, SHARED_CACHE, testKernel } from '../runners/qemu/helpers.ts';
import { expectBuildLeftoversNone, runInterrupted, seededRandom } from './interrupt-harness.ts';

const tempDir = useTempDirs();
const SEED = Number(process.env.BUILDER_FAULT_SEED ?? 20261208) + 10;
const MOMENTS = 5;
const KEYS = join(REPO, 'node_modules', '.cache', 'builder-test-keys');
const FINAL = new Set(['x86_64', 'x86_64/APKINDEX.tar.gz', 'x86_64/hello-1.0.0-r0.apk', 'x86_64/hello-doc-1.0.0-r0.apk', 'x86_64/hello-1.0.0-r0.observability.json']);

describe('interrupting builder build (qemu)', () => {
  it(`leaves nothing behind at ${MOMENTS} random moments (seed ${SEED})`, async () => {
    const root = await debianCompilerRoot();
    const out = await tempDir();
    const cache = await tempDir();
    // The shared VM artifact store (kernels, initramfs, disk images) is sealed and never the melange cache,
    // which the VM copies in whole.
    const melangeCache = await tempDir();
    const args = ['build', 'examples/hello/hello.yaml', '--runner', 'qemu', '--base', `dir:${root}`, '--vm-artifact-dir', SHARED_CACHE, '--cache-dir', melangeCache, '--out-dir', out, '--signing-key', join(KEYS, 'test.rsa')];
    const env = { SOURCE_DATE_EPOCH: '1700000000', XDG_CACHE_HOME: cache, ...kernelEnv(await testKernel()) };
    const outputs = { out, cache, final: FINAL, publicKey: join(KEYS, 'test.rsa.pub') };
    const whole = await runInterrupted({ args, env, delayMs: null, signal: 'SIGINT', exitWithinMs: 600_000 });
    expect(whole.exitCode, whole.output).toBe(0);
    await expectBuildLeftoversNone(whole, outputs, 'uninterrupted qemu build');
    const random = seededRandom(SEED);
    for (let i = 0; i < MOMENTS; i++) {
      const delayMs = Math.floor(random() * whole.elapsedMs);
      const signal = random() < 0.5 ? 'SIGINT' : 'SIGTERM';
      const outcome = await runInterrupted({ args, env, delayMs, signal, exitWithinMs: 120_000 });
      await expectBuildLeftoversNone(outcome, outputs, `qemu moment ${i}: ${signal} after ${delayMs} ms (seed ${SEED})`);
    }
  }, 1_200_000);
});
