// /var/cache/melange in the VM is read-write like melange's: what a step writes there (even with an old
// mtime, as unpackers do) is in --cache-dir after the VM stops, and the next VM's steps read it. Two real VMs
// (TCG) one after the other on one cache dir.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuRunner } from '../../../src/runners/qemu/runner.ts';
import { kernelEnv, leftovers, makeTempDir, podFor, SHARED_CACHE, testKernel, tinyRoot } from './helpers.ts';

describe('the melange cache in the VM', () => {
  let dir: string;
  let tempParent: string;
  let root: string;
  let cacheDir: string;
  const logs: string[] = [];

  beforeAll(async () => {
    dir = await makeTempDir();
    tempParent = path.join(dir, 'tmp');
    cacheDir = path.join(dir, 'melange-cache');
    await mkdir(tempParent);
    await mkdir(path.join(dir, 'workspace'));
    await mkdir(path.join(cacheDir, 'old'), { recursive: true });
    await writeFile(path.join(cacheDir, 'old/entry.txt'), 'from the host\n');
    root = await tinyRoot(dir);
  });

  afterAll(async () => {
    if (tempParent) expect(await leftovers(tempParent)).toEqual([]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function step(script: string): Promise<{ code: number; out: string }> {
    const runner = new QemuRunner({ artifactDir: SHARED_CACHE, env: kernelEnv(await testKernel()), accel: 'auto', bootTimeoutMs: 120_000, tempDir: tempParent, log: (l) => logs.push(l) });
    let out = '';
    try {
      await runner.start(podFor(root, path.join(dir, 'workspace')));
      const code = await runner.run(['/bin/sh', '-c', script], {
        env: { PATH: '/bin' },
        workdir: '/home/build',
        onOutput: (_s, c) => {
          out += c.toString('utf8');
        },
      });
      return { code, out };
    } finally {
      await runner.terminate();
    }
  }

  it('keeps what a step writes for the next build, and shows the host cache inside', async () => {
    const first = await step(
      [
        'set -e',
        'cat /var/cache/melange/old/entry.txt',
        'mkdir -p /var/cache/melange/go/mod',
        'echo written in the VM >/var/cache/melange/go/mod/new.txt',
        // An unpacker's old mtime: still a change (found by ctime).
        'echo unpacked >/var/cache/melange/go/mod/dated.txt',
        'touch -d "2001-01-01 00:00:00" /var/cache/melange/go/mod/dated.txt',
        'echo changed >/var/cache/melange/old/entry.txt',
      ].join('\n'),
    );
    expect(first.code, first.out).toBe(0);
    expect(logs.filter((l) => l.startsWith('cache')).join('\n')).toMatch(/^cache: \d+ entries/);
    expect(first.out).toContain('from the host');
    expect(await readFile(path.join(cacheDir, 'go/mod/new.txt'), 'utf8')).toBe('written in the VM\n');
    expect(await readFile(path.join(cacheDir, 'go/mod/dated.txt'), 'utf8')).toBe('unpacked\n');
    expect(await readFile(path.join(cacheDir, 'old/entry.txt'), 'utf8')).toBe('changed\n');

    const second = await step('cat /var/cache/melange/go/mod/new.txt /var/cache/melange/old/entry.txt');
    expect(second.code, second.out).toBe(0);
    expect(second.out).toBe('written in the VM\nchanged\n');
  }, 400_000);
});
