// capabilities.add / drop inside the VM, as Bubblewrap applies them: the step's bounding, effective,
// permitted, inheritable and ambient sets read from /proc/self/status in a real guest (TCG), one VM per pod.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilitySet } from '../../../src/sandbox/bwrap-seal.ts';
import { setprivCapabilities } from '../../../src/runners/qemu/inject.ts';
import { QemuRunner } from '../../../src/runners/qemu/runner.ts';
import type { PodConfig } from '../../../src/runners/runner.ts';
import { kernelEnv, leftovers, makeTempDir, podFor, SHARED_CACHE, testKernel, tinyRoot } from './helpers.ts';

const CAP_CHOWN = 0;
const CAP_KILL = 5;
const CAP_NET_RAW = 13;
const CAP_SYS_CHROOT = 18;

/** The capability sets of a step, by name (CapBnd, CapEff, ...), as bit masks. */
async function stepCapabilities(runner: QemuRunner): Promise<Record<string, bigint>> {
  let out = '';
  const code = await runner.run(['/bin/sh', '-c', 'grep ^Cap /proc/self/status'], {
    env: { PATH: '/bin' },
    workdir: '/home/build',
    onOutput: (_s, c) => {
      out += c.toString('utf8');
    },
  });
  expect(code, out).toBe(0);
  const sets: Record<string, bigint> = {};
  for (const m of out.matchAll(/^(Cap\w+):\s*([0-9a-f]+)$/gm)) sets[m[1]!] = BigInt(`0x${m[2]}`);
  return sets;
}

const bit = (n: number): bigint => 1n << BigInt(n);

describe('capability sets', () => {
  it('are computed as bwrap applies its flags, and written in setpriv syntax', () => {
    const label = 'pkg';
    expect(capabilitySet({ label, runAs: { uid: 1000, gid: 1000 }, capabilities: { add: [], drop: [] } })).toEqual([]);
    expect(setprivCapabilities([])).toBe('-all');
    const user = capabilitySet({ label, runAs: { uid: 1000, gid: 1000 }, capabilities: { add: ['net_raw', 'CAP_CHOWN'], drop: ['chown'] } });
    expect(user).toEqual(['CAP_NET_RAW']);
    expect(setprivCapabilities(user)).toBe('-all,+net_raw');
    const root = capabilitySet({ label, runAs: { uid: 0, gid: 0 }, capabilities: { add: [], drop: ['KILL'] } });
    expect(root).toContain('CAP_CHOWN');
    expect(root).not.toContain('CAP_KILL');
    expect(capabilitySet({ label, runAs: { uid: 0, gid: 0 }, capabilities: { add: ['ALL'], drop: [] } })).toEqual(['ALL']);
    expect(setprivCapabilities(['ALL'])).toBe('+all');
    expect(capabilitySet({ label, runAs: { uid: 0, gid: 0 }, capabilities: { add: ['ALL'], drop: ['sys_admin'] } })).not.toContain('CAP_SYS_ADMIN');
    expect(capabilitySet({ label, runAs: { uid: 0, gid: 0 }, capabilities: { add: ['net_raw'], drop: ['ALL'] } })).toEqual([]);
  });
});

describe('capabilities inside the VM', () => {
  let dir: string;
  let tempParent: string;
  let root: string;
  const env = async () => kernelEnv(await testKernel());

  beforeAll(async () => {
    dir = await makeTempDir();
    tempParent = path.join(dir, 'tmp');
    await mkdir(tempParent);
    await mkdir(path.join(dir, 'workspace'));
    await mkdir(path.join(dir, 'melange-cache'));
    root = await tinyRoot(dir);
  });

  afterAll(async () => {
    if (tempParent) expect(await leftovers(tempParent)).toEqual([]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function withVm<T>(overrides: Partial<PodConfig>, body: (runner: QemuRunner) => Promise<T>): Promise<T> {
    const runner = new QemuRunner({ artifactDir: SHARED_CACHE, env: await env(), accel: 'auto', bootTimeoutMs: 120_000, tempDir: tempParent });
    try {
      await runner.start(podFor(root, path.join(dir, 'workspace'), overrides));
      return await body(runner);
    } finally {
      await runner.terminate();
    }
  }

  it('gives the build user exactly the added capabilities, in every set, and an empty bounding set otherwise', async () => {
    await withVm({ capabilities: { add: ['NET_RAW'], drop: [] } }, async (runner) => {
      const sets = await stepCapabilities(runner);
      for (const name of ['CapBnd', 'CapEff', 'CapPrm', 'CapInh', 'CapAmb']) expect(sets[name], name).toBe(bit(CAP_NET_RAW));
    });
  }, 300_000);

  it('takes the dropped capabilities away from a root step, bounding set included', async () => {
    await withVm({ runAs: { uid: 0, gid: 0 }, capabilities: { add: [], drop: ['CHOWN', 'sys_chroot'] } }, async (runner) => {
      const sets = await stepCapabilities(runner);
      const eff = sets.CapEff!;
      const bnd = sets.CapBnd!;
      expect(eff & bit(CAP_CHOWN)).toBe(0n);
      expect(bnd & bit(CAP_CHOWN)).toBe(0n);
      expect(bnd & bit(CAP_SYS_CHROOT)).toBe(0n);
      expect(eff & bit(CAP_KILL)).toBe(bit(CAP_KILL));
      // Docker's default set, as under Bubblewrap: nothing like CAP_SYS_ADMIN (21).
      expect(bnd & bit(21)).toBe(0n);
      expect(eff).toBe(bnd);
    });
  }, 300_000);
});
