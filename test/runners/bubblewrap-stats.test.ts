// Per-step resources under Bubblewrap, from the host's accounting of the whole sandbox: a step that sleeps
// 1 s takes ≥ 1 s of wall time and far less CPU; a step that burns CPU and memory shows both; exit codes and
// signals pass through the measuring wrapper unchanged, and the sandbox never sees the wrapper's descriptor.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BubblewrapRunner } from '../../src/runners/bubblewrap.ts';
import type { StepResources } from '../../src/runners/runner.ts';
import { hostRoot, makeSandboxDirs, Output, podConfig, runOptions, type Sandbox } from './helpers.ts';

let sandbox: Sandbox;
let runner: BubblewrapRunner;

beforeAll(async () => {
  sandbox = await makeSandboxDirs();
  runner = new BubblewrapRunner();
  await runner.start(podConfig(sandbox, await hostRoot()));
});

afterAll(async () => {
  await runner.terminate();
  await sandbox.remove();
});

async function measured(script: string): Promise<{ code: number; stdout: string; resources: StepResources[] }> {
  const output = new Output();
  const resources: StepResources[] = [];
  const code = await runner.run(['/bin/sh', '-c', script], { ...runOptions(output), onResources: (r) => resources.push(r) });
  return { code, stdout: output.text('stdout'), resources };
}

describe('BubblewrapRunner step resources', () => {
  it('a step that sleeps 1 s: wall ≥ 1 s, CPU ≪ wall', async () => {
    const { code, resources } = await measured('sleep 1');
    expect(code).toBe(0);
    expect(resources).toHaveLength(1);
    const r = resources[0]!;
    expect(r.wallMs).toBeGreaterThanOrEqual(1000);
    expect(r.userMs + r.systemMs).toBeLessThan(r.wallMs / 4);
    expect(r.maxRssKiB).toBeGreaterThan(0);
  });

  it('counts the CPU and the peak memory of the step\'s processes', async () => {
    // 64 MiB held by one process (dd's block buffer), then a busy loop.
    const { code, resources } = await measured('dd if=/dev/zero of=/dev/null bs=64M count=4 2>/dev/null; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done');
    expect(code).toBe(0);
    const r = resources[0]!;
    expect(r.maxRssKiB).toBeGreaterThan(64 * 1024);
    expect(r.userMs + r.systemMs).toBeGreaterThan(50);
  });

  it('passes exit codes and signals through, and hides its descriptor from the step', async () => {
    expect((await measured('exit 7')).code).toBe(7);
    expect((await measured('kill -KILL $$')).code).toBe(137);
    const fds = await measured('ls /proc/self/fd');
    expect(fds.stdout.split('\n').filter((l) => l !== '').map(Number).sort((a, b) => a - b)).not.toContain(5);
  });
});

describe('step resources in the build summary', () => {
  it('one line per measured step', async () => {
    const { formatResources, stepResourceLines } = await import('../../src/build/steps.ts');
    const r = { wallMs: 1020, userMs: 4, systemMs: 6, maxRssKiB: 5939 };
    expect(formatResources(r)).toBe('wall 1.02 s, CPU 0.01 s (user 0.00 s, system 0.01 s), peak RSS 5.8 MiB');
    expect(stepResourceLines([{ packageName: 'hello', step: 'make', resources: r }, { packageName: 'hello', step: 'unmeasured' }])).toEqual([
      'step hello: make: wall 1.02 s, CPU 0.01 s (user 0.00 s, system 0.01 s), peak RSS 5.8 MiB',
    ]);
  });
});
