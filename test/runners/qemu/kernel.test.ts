// Finding the kernel and its modules, and the module load order, against the real Debian cloud kernel.
import { copyFile, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KernelError, kernelRelease, locateKernel, moduleLoadOrder } from '../../../src/runners/qemu/kernel.ts';
import { machineLayout } from '../../../src/runners/qemu/machine.ts';
import { makeTempDir, testKernel, type TestKernel } from './helpers.ts';

let kernel: TestKernel;
let release: string;
let dir: string;

beforeAll(async () => {
  kernel = await testKernel();
  release = path.basename(kernel.modules);
  dir = await makeTempDir('builder-kernel-test-');
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kernelRelease', () => {
  it('reads the release from the bzImage header', async () => {
    expect(await kernelRelease(kernel.image)).toBe(release);
  });
});

describe('locateKernel', () => {
  it('takes the flags first, then QEMU_KERNEL_IMAGE / QEMU_KERNEL_MODULES', async () => {
    const fromEnv = await locateKernel({ env: { QEMU_KERNEL_IMAGE: kernel.image, QEMU_KERNEL_MODULES: kernel.modules } });
    expect(fromEnv).toEqual({ image: kernel.image, release, modulesDir: kernel.modules });
    const fromFlags = await locateKernel({ kernel: kernel.image, kernelModules: kernel.modules, env: { QEMU_KERNEL_IMAGE: '/nonexistent' } });
    expect(fromFlags.image).toBe(kernel.image);
  });

  it('finds the modules beside the image, as dpkg-deb -x lays them out', async () => {
    const found = await locateKernel({ env: { QEMU_KERNEL_IMAGE: kernel.image } });
    expect(found.modulesDir).toBe(kernel.modules);
  });

  it('accepts a directory holding lib/modules/<release>', async () => {
    const prefix = path.dirname(path.dirname(path.dirname(kernel.modules)));
    expect((await locateKernel({ kernel: kernel.image, kernelModules: prefix })).modulesDir).toBe(path.join(prefix, 'lib/modules', release));
  });

  it('refuses modules built for another kernel', async () => {
    const other = path.join(dir, '6.0.0-1-other');
    await mkdir(path.join(other, 'kernel'), { recursive: true });
    const err = await locateKernel({ kernel: kernel.image, kernelModules: other }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelError);
    expect((err as Error).message).toBe(`--kernel-modules: ${other} holds modules for kernel 6.0.0-1-other, but the kernel image ${kernel.image} is ${release}`);
  });

  it('says how to get modules when there are none', async () => {
    const lonely = path.join(dir, 'boot', `vmlinuz-${release}`);
    await mkdir(path.dirname(lonely), { recursive: true });
    await copyFile(kernel.image, lonely);
    const err = await locateKernel({ kernel: lonely, env: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelError);
    expect((err as Error).message).toMatch(new RegExp(`no kernel modules for ${release.replaceAll('.', '\\.')}`));
    expect((err as KernelError).details.join('\n')).toMatch(/apt-get download linux-image-6\.1\.0-NN-cloud-amd64/);
  });

  it('refuses a file that is not a kernel', async () => {
    const file = path.join(dir, 'vmlinuz-fake');
    await writeFile(file, Buffer.alloc(4096));
    await expect(locateKernel({ kernel: file, env: {} })).rejects.toThrow(/is not a Linux kernel image \(bzImage\)/);
  });
});

describe('moduleLoadOrder', () => {
  it('loads every dependency before the module that needs it, and skips built-in ones', async () => {
    const spec = await locateKernel({ kernel: kernel.image, kernelModules: kernel.modules });
    const order = await moduleLoadOrder(spec, machineLayout('q35', undefined).modules);
    const names = order.map((p) => path.basename(p, '.ko'));
    const before = (a: string, b: string) => expect(names.indexOf(a), `${a} before ${b}`).toBeLessThan(names.indexOf(b));
    before('virtio_ring', 'virtio');
    before('virtio', 'virtio_pci');
    before('failover', 'net_failover');
    before('net_failover', 'virtio_net');
    before('virtio', 'virtio_blk');
    expect(new Set(names).size).toBe(names.length);
    // ext4 is built into the cloud kernel.
    expect(names).not.toContain('ext4');
    const micro = await moduleLoadOrder(spec, machineLayout('microvm', 2_000_000).modules);
    expect(micro.map((p) => path.basename(p, '.ko'))).toContain('virtio_mmio');
  });

  it('works without modules.dep (as unpacked from the package) by asking depmod', async () => {
    const bare = path.join(dir, 'bare', release);
    await mkdir(bare, { recursive: true });
    await symlink(path.join(kernel.modules, 'kernel'), path.join(bare, 'kernel'));
    await copyFile(path.join(kernel.modules, 'modules.builtin'), path.join(bare, 'modules.builtin'));
    await copyFile(path.join(kernel.modules, 'modules.order'), path.join(bare, 'modules.order'));
    await copyFile(path.join(kernel.modules, 'modules.builtin.modinfo'), path.join(bare, 'modules.builtin.modinfo'));
    const spec = await locateKernel({ kernel: kernel.image, kernelModules: bare });
    const withDep = await locateKernel({ kernel: kernel.image, kernelModules: kernel.modules });
    const layout = machineLayout('q35', undefined).modules;
    expect(await moduleLoadOrder(spec, layout)).toEqual(await moduleLoadOrder(withDep, layout));
  });

  it('names a module the kernel lacks', async () => {
    const spec = await locateKernel({ kernel: kernel.image, kernelModules: kernel.modules });
    await expect(moduleLoadOrder(spec, [{ name: 'no_such_driver' }])).rejects.toThrow(/has no module for no_such_driver/);
    expect(await moduleLoadOrder(spec, [{ name: 'no_such_driver', optional: true }])).toEqual([]);
  });
});
