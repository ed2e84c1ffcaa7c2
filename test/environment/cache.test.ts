import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { execa } from 'execa';
import { describe, expect, it, vi } from 'vitest';
import { formatListing, parseDuration, registerCacheCommand } from '../../src/cli/commands/cache.ts';
import { canonicalJson, digestOf, RootCache } from '../../src/environment/cache.ts';
import { acquireLock } from '../../src/os/lock.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const noLog = (): void => undefined;
const LOCK_MODULE = resolve(import.meta.dirname, '../../src/os/lock.ts');

async function makeRoot(cache: RootCache, inputs: unknown, file = 'hello'): Promise<string> {
  const digest = digestOf(inputs);
  await cache.obtain(
    digest,
    async (rootfs) => {
      await writeFile(join(rootfs, file), 'x'.repeat(100));
      return { kind: 'root', description: `root for ${JSON.stringify(inputs)}`, inputs };
    },
    { log: noLog },
  );
  return digest;
}

describe('digests', () => {
  it('do not depend on key order and do depend on values', () => {
    expect(canonicalJson({ b: 1, a: [1, { d: 2, c: undefined }] })).toBe('{"a":[1,{"d":2}],"b":1}');
    expect(digestOf({ a: 1, b: 2 })).toBe(digestOf({ b: 2, a: 1 }));
    expect(digestOf({ a: 1 })).not.toBe(digestOf({ a: 2 }));
    expect(digestOf({ a: 1 })).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('RootCache', () => {
  it('publishes a root only when complete; a failed creation leaves nothing', async () => {
    const dir = await tempDir();
    const cache = new RootCache(dir);
    const digest = digestOf({ failing: true });
    await expect(
      cache.obtain(
        digest,
        async (rootfs) => {
          await writeFile(join(rootfs, 'half'), 'made');
          throw new Error('download failed half way');
        },
        { log: noLog },
      ),
    ).rejects.toThrow('download failed half way');
    expect(await readdir(join(dir, 'roots'))).toEqual([]);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(await readdir(join(dir, 'locks'))).toEqual([]);
    expect(await cache.get(digest)).toBeUndefined();

    const ok = await makeRoot(cache, { ok: 1 });
    const got = await cache.get(ok);
    expect(got?.meta).toMatchObject({ digest: ok, kind: 'root', size: 100 });
    expect(await readFile(join(got!.rootfs, 'hello'), 'utf8')).toHaveLength(100);
  });

  it('creates a root once for concurrent requests and counts the hits', async () => {
    const dir = await tempDir();
    const caches = [new RootCache(dir), new RootCache(dir), new RootCache(dir)];
    const create = vi.fn(async (rootfs: string) => {
      await new Promise((r) => setTimeout(r, 100));
      await writeFile(join(rootfs, 'f'), 'x');
      return { kind: 'root' as const, description: 'once', inputs: {} };
    });
    const digest = digestOf({ once: true });
    const results = await Promise.all(caches.map((c) => c.obtain(digest, create, { log: noLog })));
    expect(create).toHaveBeenCalledTimes(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(caches.reduce((n, c) => n + c.stats.hits, 0)).toBe(2);
    expect(caches.reduce((n, c) => n + c.stats.waited, 0)).toBe(2);
  });

  it('lists most recently used first and prunes by age, with dangling requests and abandoned temps', async () => {
    const dir = await tempDir();
    const cache = new RootCache(dir);
    const old = await makeRoot(cache, { n: 1 });
    const recent = await makeRoot(cache, { n: 2 });
    await cache.recordRequest(digestOf({ request: 1 }), old);
    const longAgo = new Date(Date.now() - 10 * 86400_000);
    await utimes(join(dir, 'roots', old, 'root.json'), longAgo, longAgo);
    // A temp dir of a process that cannot exist (above the kernel's pid_max).
    await mkdir(join(dir, 'tmp', `${digestOf({ n: 3 })}.999999999.abcdef/rootfs`), { recursive: true });

    const listed = await cache.list();
    expect(listed.map((r) => r.digest)).toEqual([recent, old]);
    expect(formatListing(listed)[0]).toMatch(/^DIGEST\s+KIND\s+SIZE\s+LAST USED\s+CONTENTS$/);
    expect(formatListing(listed)[1]).toContain(`${recent.slice(0, 12)}  root  100 B`);

    expect((await cache.prune({ olderThan: new Date(Date.now() - 86400_000), dryRun: true })).map((r) => r.digest)).toEqual([old]);
    expect((await cache.list()).length).toBe(2);
    const removed = await cache.prune({ olderThan: new Date(Date.now() - 86400_000) });
    expect(removed.map((r) => r.digest)).toEqual([old]);
    expect((await cache.list()).map((r) => r.digest)).toEqual([recent]);
    expect(await readdir(join(dir, 'requests'))).toEqual([]);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    await cache.prune();
    expect(await cache.list()).toEqual([]);
  });
});

describe('builder cache ls|prune', () => {
  async function run(args: string[]): Promise<string> {
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
    try {
      const program = new Command('builder').exitOverride();
      registerCacheCommand(program);
      await program.parseAsync(['node', 'builder', ...args]);
    } finally {
      spy.mockRestore();
    }
    return out.join('');
  }

  it('lists and prunes', async () => {
    const dir = await tempDir();
    const digest = await makeRoot(new RootCache(dir), { cli: 1 });
    const listing = await run(['cache', 'ls', '--root-cache-dir', dir]);
    expect(listing).toContain(digest.slice(0, 12));
    expect(listing).toContain('1 root(s), 100 B');
    const json = (JSON.parse(await run(['cache', 'ls', '--root-cache-dir', dir, '--json'])) as { roots: { digest: string }[] }).roots;
    expect(json.map((r) => r.digest)).toEqual([digest]);
    expect(await run(['cache', 'prune', '--root-cache-dir', dir, '--older-than', '1d'])).toBe('removed 0 root(s), 0 B\n');
    expect(await run(['cache', 'prune', '--root-cache-dir', dir])).toContain(`removed ${digest.slice(0, 12)} root 100 B`);
    expect(await run(['cache', 'ls', '--root-cache-dir', dir])).toContain('(no cached roots)');
  });

  it('parses durations', () => {
    expect(parseDuration('90', '--older-than')).toBe(90_000);
    expect(parseDuration('15m', '--older-than')).toBe(900_000);
    expect(parseDuration('2d', '--older-than')).toBe(172_800_000);
    expect(() => parseDuration('soon', '--older-than')).toThrow('--older-than: "soon" is not a duration');
  });
});

describe('lock', () => {
  it('serialises processes', async () => {
    const dir = await tempDir();
    const log = join(dir, 'log');
    const script = join(dir, 'hold.mjs');
    await writeFile(
      script,
      `import { appendFileSync } from 'node:fs';
import { acquireLock } from ${JSON.stringify(LOCK_MODULE)};
const lock = await acquireLock(process.argv[2], { pollMs: 20 });
appendFileSync(process.argv[3], 'start\\n');
await new Promise((r) => setTimeout(r, 300));
appendFileSync(process.argv[3], 'end\\n');
await lock.release();
`,
    );
    await Promise.all([1, 2, 3].map(() => execa('node', [script, join(dir, 'the.lock'), log])));
    expect(await readFile(log, 'utf8')).toBe('start\nend\n'.repeat(3));
    expect(await readdir(dir)).not.toContain('the.lock');
  });

  it('breaks a lock whose holder died, and waits for a live one', async () => {
    const dir = await tempDir();
    const path = join(dir, 'x.lock');
    const dead = await execa('node', ['-e', 'console.log(process.pid)']);
    await writeFile(path, `${hostname()} ${dead.stdout.trim()} deadbeef\n`);
    const lock = await acquireLock(path, { pollMs: 10 });
    const waits: string[] = [];
    let second = false;
    const pending = acquireLock(path, { pollMs: 10, onWait: (h) => waits.push(h) }).then((l) => {
      second = true;
      return l;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(second).toBe(false);
    expect(waits).toEqual([`${hostname()} pid ${process.pid}`]);
    await lock.release();
    await (await pending).release();
    expect(second).toBe(true);
  });
});
