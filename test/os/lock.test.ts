import { execa } from 'execa';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { RootCache } from '../../src/environment/cache.ts';
import { EMPTY_LOCK_GRACE_MS, withLock } from '../../src/os/lock.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

async function deadPid(): Promise<number> {
  const child = await execa('node', ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout);
}

describe('withLock', () => {
  it('runs holders one at a time and writes the holder host and pid into the lock', async () => {
    const dir = await tempDir();
    const target = join(dir, 'thing');
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        withLock(`${target}.lock`, {}, async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          expect((await readFile(`${target}.lock`, 'utf8')).split(' ').slice(0, 2)).toEqual([hostname(), String(process.pid)]);
          await sleep(5);
          order.push(i);
          inside--;
        }),
      ),
    );
    expect(maxInside).toBe(1);
    expect(order.sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('releases the lock when the holder throws', async () => {
    const dir = await tempDir();
    const target = join(dir, 'thing');
    await expect(withLock(`${target}.lock`, {}, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await readdir(dir)).toEqual([]);
    expect(await withLock(`${target}.lock`, {}, async () => 'again')).toBe('again');
  });

  it('breaks a lock left by a dead process', async () => {
    const dir = await tempDir();
    const target = join(dir, 'thing');
    await writeFile(`${target}.lock`, `${await deadPid()} leftover\n`);
    expect(await withLock(`${target}.lock`, { timeoutMs: 2000 }, async () => 'got it')).toBe('got it');
    expect(await readdir(dir)).toEqual([]);
  });

  it('waits on an empty lock file younger than the grace period', async () => {
    const dir = await tempDir();
    const target = join(dir, 'thing');
    await writeFile(`${target}.lock`, '');
    await expect(withLock(`${target}.lock`, { timeoutMs: 150 }, async () => 'never')).rejects.toThrow(/timed out/);
  });

  it('breaks an old empty lock file (a crash between create and write)', async () => {
    const dir = await tempDir();
    const target = join(dir, 'thing');
    await writeFile(`${target}.lock`, '');
    const old = new Date(Date.now() - EMPTY_LOCK_GRACE_MS - 5_000);
    await utimes(`${target}.lock`, old, old);
    expect(await withLock(`${target}.lock`, { timeoutMs: 2000 }, async () => 'got it')).toBe('got it');
  });

  it('times out on a lock held by a live process, naming it, and leaves that lock alone', async () => {
    const dir = await tempDir();
    const target = join(dir, 'thing');
    const foreign = `${process.ppid} someone-else\n`;
    await writeFile(`${target}.lock`, foreign);
    await expect(withLock(`${target}.lock`, { timeoutMs: 150 }, async () => 'never')).rejects.toThrow(
      new RegExp(`timed out after 150 ms waiting for lock .*thing\\.lock held by pid ${process.ppid}`),
    );
    expect(await readFile(`${target}.lock`, 'utf8')).toBe(foreign);
  });

  it('is the lock the root cache takes: an empty lock left by a crash does not block it', async () => {
    const dir = await tempDir();
    const digest = 'a'.repeat(64);
    const lock = join(dir, 'locks', `${digest}.lock`);
    await mkdir(join(dir, 'locks'));
    await writeFile(lock, '');
    const old = new Date(Date.now() - EMPTY_LOCK_GRACE_MS - 5_000);
    await utimes(lock, old, old);
    const cache = new RootCache(dir);
    await Promise.race([cache.remove(digest), sleep(5_000).then(() => Promise.reject(new Error('blocked by the stale lock')))]);
    expect(await readdir(join(dir, 'locks'))).toEqual([]);
  });
});
