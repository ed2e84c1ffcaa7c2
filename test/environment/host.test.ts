import { lstat, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HOST_ROOT_DESCRIPTION, HostProvider, hostRootMounts } from '../../src/environment/host.ts';
import { BubblewrapRunner } from '../../src/runners/bubblewrap.ts';
import { BuilderError } from '../../src/errors.ts';

const spec = { repositories: [], keyring: [], packages: [] as string[], arch: '' };
const hostArch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';

describe('HostProvider', () => {
  it('describes itself as not hermetic and has no single root directory', async () => {
    const root = await new HostProvider().prepare(spec, () => undefined);
    expect(root.description).toBe(HOST_ROOT_DESCRIPTION);
    expect(root.description).toContain('not hermetic');
    expect(root.directory).toBeUndefined();
    await root.release();
    await root.release();
  });

  it('binds the host system directories read-only, resolving merged-/usr links to their targets', async () => {
    const root = await new HostProvider().prepare(spec, () => undefined);
    const targets = root.mounts.map((m) => m.target);
    expect(targets[0]).toBe('/usr');
    expect(targets).toContain('/etc');
    expect(root.mounts.every((m) => m.readonly)).toBe(true);
    for (const dir of ['/bin', '/sbin', '/lib', '/lib64', '/lib32', '/libx32']) {
      const info = await lstat(dir).catch(() => undefined);
      const mount = root.mounts.find((m) => m.target === dir);
      if (info === undefined) {
        expect(mount).toBeUndefined();
        continue;
      }
      expect(mount?.source).toBe(info.isSymbolicLink() ? await realpath(dir) : dir);
    }
  });

  it('logs one line for packages it cannot install, and nothing otherwise', async () => {
    const lines: string[] = [];
    await new HostProvider().prepare({ ...spec, packages: ['busybox', 'make'], arch: hostArch }, (l) => lines.push(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('busybox make');
    expect(lines[0]).toContain('assumed present on the host');
    const none: string[] = [];
    await new HostProvider().prepare(spec, (l) => none.push(l));
    expect(none).toEqual([]);
  });

  it('refuses to build for another architecture', async () => {
    const other = hostArch === 'x86_64' ? 'aarch64' : 'x86_64';
    await expect(new HostProvider().prepare({ ...spec, arch: other }, () => undefined)).rejects.toThrow(BuilderError);
    await expect(new HostProvider().prepare({ ...spec, arch: hostArch === 'x86_64' ? 'amd64' : 'arm64' }, () => undefined)).resolves.toBeDefined();
  });

  it('skips missing directories, non-directories and dangling links', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'builder-host-test-'));
    try {
      await mkdir(path.join(dir, 'usr', 'bin'), { recursive: true });
      await symlink('usr/bin', path.join(dir, 'bin'));
      await symlink('usr/missing', path.join(dir, 'sbin'));
      await writeFile(path.join(dir, 'lib'), 'not a directory');
      const names = ['usr', 'bin', 'sbin', 'lib', 'lib64'].map((n) => path.join(dir, n));
      expect(await hostRootMounts(names)).toEqual([
        { source: path.join(dir, 'usr'), target: path.join(dir, 'usr'), readonly: true },
        { source: path.join(dir, 'usr', 'bin'), target: path.join(dir, 'bin'), readonly: true },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is a working build root for the Bubblewrap runner', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'builder-host-test-'));
    try {
      await mkdir(path.join(dir, 'ws'));
      await mkdir(path.join(dir, 'cache'));
      const root = await new HostProvider().prepare(spec, () => undefined);
      const runner = new BubblewrapRunner();
      await runner.start({
        packageName: 'host-test', root, workspaceDir: path.join(dir, 'ws'), cacheDir: path.join(dir, 'cache'),
        mounts: [], network: false, runAs: { uid: 1000, gid: 1000 }, arch: hostArch, resources: {},
        capabilities: { add: [], drop: [] },
      });
      const out: Buffer[] = [];
      const code = await runner.run(['/bin/sh', '-c', 'ls /bin/sh /usr/bin/env >/dev/null && /sbin/ldconfig -p >/dev/null; echo ok'], {
        env: { PATH: '/usr/bin:/bin' }, workdir: '/home/build', onOutput: (_s, c) => out.push(c),
      });
      expect(Buffer.concat(out).toString()).toBe('ok\n');
      expect(code).toBe(0);
      await runner.terminate();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
