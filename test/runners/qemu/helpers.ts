// Fixtures for the QEMU runner tests: the Debian cloud kernel (fetched by scripts/fetch-kernel.sh), a shared
// cache for the base initramfs and disk images, a tiny busybox build root, a Debian root with gcc and make,
// and checks that nothing (no QEMU process, no temp file) is left behind.
import { execa } from 'execa';
import { createReadStream } from 'node:fs';
import { appendFile, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { ensureSealedBaseInitramfs } from '../../../src/runners/qemu/seal.ts';
import { readCpio } from '../../../src/initramfs/cpio.ts';
import type { PodConfig } from '../../../src/runners/runner.ts';
import { podConfig } from '../helpers.ts';

/** Kept between runs (like the kernel): the base initramfs, module archives and root disk images. */
export const SHARED_CACHE = process.env.BUILDER_TEST_QEMU_CACHE ?? '/var/tmp/builder-test-qemu/artifacts';
const SHARED_ROOTS = process.env.BUILDER_TEST_QEMU_ROOTS ?? '/var/tmp/builder-test-qemu/roots';
const KERNEL_CACHE = '/var/tmp/builder-kernel';

export interface TestKernel {
  image: string;
  modules: string;
}

/** The kernel the tests boot: QEMU_KERNEL_IMAGE/QEMU_KERNEL_MODULES, else what scripts/fetch-kernel.sh fetched. */
export async function testKernel(): Promise<TestKernel> {
  const image = process.env.QEMU_KERNEL_IMAGE;
  const modules = process.env.QEMU_KERNEL_MODULES;
  if (image && modules) return { image, modules };
  const names = (await readdir(path.join(KERNEL_CACHE, 'boot')).catch(() => [] as string[])).filter((n) => n.startsWith('vmlinuz-')).sort();
  const newest = names.at(-1);
  if (newest) {
    const release = newest.slice('vmlinuz-'.length);
    return { image: path.join(KERNEL_CACHE, 'boot', newest), modules: path.join(KERNEL_CACHE, 'lib/modules', release) };
  }
  throw new Error(
    `no kernel for the QEMU tests: run scripts/fetch-kernel.sh ${KERNEL_CACHE} (Debian's cloud kernel, unpacked) or set QEMU_KERNEL_IMAGE and QEMU_KERNEL_MODULES`,
  );
}

export function kernelEnv(kernel: TestKernel): { QEMU_KERNEL_IMAGE: string; QEMU_KERNEL_MODULES: string } {
  return { QEMU_KERNEL_IMAGE: kernel.image, QEMU_KERNEL_MODULES: kernel.modules };
}

/** Serialises the making of a shared fixture across test files running in parallel. */
async function withLock<T>(lockFile: string, work: () => Promise<T>): Promise<T> {
  await mkdir(path.dirname(lockFile), { recursive: true });
  for (;;) {
    try {
      const fh = await open(lockFile, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(await readFile(lockFile, 'utf8').catch(() => '0'));
      let alive = owner > 0;
      try {
        if (alive) process.kill(owner, 0);
      } catch {
        alive = false;
      }
      if (!alive) await rm(lockFile, { force: true });
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await work();
  } finally {
    await rm(lockFile, { force: true });
  }
}

/** A minimal root: static busybox (taken from the base initramfs) as sh and friends, an os-release. */
export async function tinyRoot(dir: string): Promise<string> {
  const base = await withLock(path.join(SHARED_CACHE, '.initramfs.lock'), () => ensureSealedBaseInitramfs({ cacheDir: SHARED_CACHE }));
  const root = path.join(dir, 'root');
  await mkdir(path.join(root, 'bin'), { recursive: true });
  for (const d of ['etc', 'home/build', 'tmp', 'usr/bin']) await mkdir(path.join(root, d), { recursive: true });
  for await (const entry of readCpio(createReadStream(base.path).pipe(createGunzip()))) {
    if (entry.name !== 'bin/busybox') continue;
    await writeFile(path.join(root, 'bin/busybox'), await entry.buffer(), { mode: 0o755 });
  }
  for (const applet of ['sh', 'ls', 'cat', 'id', 'env', 'pwd', 'echo', 'sleep', 'mkdir', 'true', 'false', 'uname', 'head', 'dd', 'sha256sum', 'find', 'stat', 'wc', 'rm', 'touch', 'ln', 'chmod']) {
    await symlink('busybox', path.join(root, 'bin', applet));
  }
  await writeFile(path.join(root, 'etc/os-release'), 'ID=tiny\nPRETTY_NAME="tiny test root"\n');
  await writeFile(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nbuild:x:1000:1000:build:/home/build:/bin/sh\n');
  await writeFile(path.join(root, 'etc/group'), 'root:x:0:\nbuild:x:1000:\n');
  return root;
}

/**
 * Debian bookworm with gcc, make and libc6-dev (mmdebstrap, network to the Debian archive), made once and kept
 * under /var/tmp between runs; the build user (1000:1000, /home/build) is added as an environment would.
 */
export async function debianCompilerRoot(): Promise<string> {
  const root = path.join(SHARED_ROOTS, 'bookworm-gcc-make');
  return withLock(path.join(SHARED_ROOTS, '.bookworm.lock'), async () => {
    if ((await stat(path.join(root, 'usr/bin/make')).catch(() => undefined))?.isFile()) {
      // Mount points a sandbox binds over a read-only root (as environments make them).
      await mkdir(path.join(root, 'var/cache/melange'), { recursive: true });
      return root;
    }
    const temp = `${root}.${process.pid}.tmp`;
    await rm(temp, { recursive: true, force: true });
    await mkdir(SHARED_ROOTS, { recursive: true });
    try {
      await execa('mmdebstrap', ['--variant=minbase', '--include=gcc,make,libc6-dev', 'bookworm', temp], {
        env: { LC_ALL: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive' },
      });
      await appendFile(path.join(temp, 'etc/passwd'), 'build:x:1000:1000:build:/home/build:/bin/sh\n');
      await appendFile(path.join(temp, 'etc/group'), 'build:x:1000:\n');
      await mkdir(path.join(temp, 'home/build'), { recursive: true });
      await mkdir(path.join(temp, 'var/cache/melange'), { recursive: true });
      await rename(temp, root);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      throw err;
    }
    return root;
  });
}

export async function makeTempDir(prefix = 'builder-qemu-test-'): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

export function podFor(root: string, workspaceDir: string, overrides: Partial<PodConfig> = {}): PodConfig {
  const dirRoot = { description: `dir:${root}`, mounts: [{ source: root, target: '/', readonly: true }], directory: root };
  return podConfig({ workspaceDir, cacheDir: path.join(workspaceDir, '..', 'melange-cache') }, dirRoot, overrides);
}

/** PIDs of QEMU processes whose command line mentions `marker` (a test's private temp dir). */
export async function qemuProcessesMentioning(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'latin1').catch(() => '');
    if (cmdline.includes('qemu-system') && cmdline.includes(marker)) pids.push(Number(name));
  }
  return pids;
}

/** Everything left in a directory (recursively), as relative paths. */
export async function leftovers(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const d of await readdir(path.join(dir, rel), { withFileTypes: true }).catch(() => [])) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      out.push(p);
      if (d.isDirectory()) await walk(p);
    }
  };
  await walk('');
  return out;
}
