import { execa } from 'execa';
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { withFileLock } from '../../src/apk/lock.ts';
import { useTempDirs } from './helpers.ts';

const tempDir = useTempDirs();

async function deadPid(): Promise<number> {
  const child = await execa('node', ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout);
}

describe('withFileLock', () => {
  it('runs holders one at a time and writes the holder pid into <path>.lock', async () => {
    const dir = await tempDir();
    const target = join(dir, 'thing');
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        withFileLock(target, async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          expect((await readFile(`${target}.lock`, 'utf8')).split(' ')[0]).toBe(String(process.pid));
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
    await expect(withFileLock(target, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await readdir(dir)).toEqual([]);
    expect(await withFileLock(target, async () => 'again')).toBe('again');
  });

  it('breaks a lock left by a dead process', async () => {
    const dir = await tempDir();
    const target = join(dir, 'thing');
    await writeFile(`${target}.lock`, `${await deadPid()} leftover\n`);
    expect(await withFileLock(target, async () => 'got it', { timeoutMs: 2000 })).toBe('got it');
    expect(await readdir(dir)).toEqual([]);
  });

  it('breaks an old empty lock file (a crash between create and write)', async () => {
    const dir = await tempDir();
    const target = join(dir, 'thing');
    await writeFile(`${target}.lock`, '');
    const old = new Date(Date.now() - 60_000);
    await utimes(`${target}.lock`, old, old);
    expect(await withFileLock(target, async () => 'got it', { timeoutMs: 2000 })).toBe('got it');
  });

  it('times out on a lock held by a live process, naming it, and leaves that lock alone', async () => {
    const dir = await tempDir();
    const target = join(dir, 'thing');
    const foreign = `${process.ppid} someone-else\n`;
    await writeFile(`${target}.lock`, foreign);
    await expect(withFileLock(target, async () => 'never', { timeoutMs: 150 })).rejects.toThrow(
      new RegExp(`timed out after 150 ms waiting for lock .*thing\\.lock held by pid ${process.ppid}`),
    );
    expect(await readFile(`${target}.lock`, 'utf8')).toBe(foreign);
  });
});
