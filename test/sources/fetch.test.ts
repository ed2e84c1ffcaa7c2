import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BuilderError } from '../../src/errors.ts';
import type { FetchSourcePlan } from '../../src/pipeline/plan.ts';
import { ChecksumMismatchError, fetchToCache } from '../../src/sources/fetch.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const sha = (algorithm: 'sha256' | 'sha512', data: Buffer | string) => createHash(algorithm).update(data).digest('hex');

function fetchPlan(uri: string, hashes: { sha256?: string; sha512?: string }): FetchSourcePlan {
  return {
    kind: 'fetch',
    uri,
    ...hashes,
    cacheName: hashes.sha256 ? `sha256:${hashes.sha256}` : `sha512:${hashes.sha512}`,
    source: 'recipe.yaml:3:5',
  };
}

async function setup(content = 'archive contents\n'.repeat(1000)) {
  const dir = await tempDir();
  const cache = join(dir, 'cache');
  const file = join(dir, 'src', 'hello-1.0.tar.gz');
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(file, content);
  return { dir, cache, file, content, sha256: sha('sha256', content), sha512: sha('sha512', content) };
}

describe('host-side fetch', () => {
  it('copies a file:// URI into the cache under its sha256, verified', async () => {
    const s = await setup();
    const result = await fetchToCache(fetchPlan(pathToFileURL(s.file).href, { sha256: s.sha256 }), { cacheDir: s.cache, baseDir: s.dir });
    expect(result).toEqual({ path: join(s.cache, `sha256:${s.sha256}`), cached: false, bytes: s.content.length });
    expect(await readFile(result.path, 'utf8')).toBe(s.content);
    expect(await readdir(s.cache)).toEqual([`sha256:${s.sha256}`]);
  });

  it('reads a local path relative to the recipe folder and verifies sha512 and sha256 together', async () => {
    const s = await setup();
    const result = await fetchToCache(fetchPlan('src/hello-1.0.tar.gz', { sha256: s.sha256, sha512: s.sha512 }), { cacheDir: s.cache, baseDir: s.dir });
    expect(await readFile(result.path, 'utf8')).toBe(s.content);
    const only512 = await fetchToCache(fetchPlan('src/hello-1.0.tar.gz', { sha512: s.sha512 }), { cacheDir: s.cache, baseDir: s.dir });
    expect(only512.path).toBe(join(s.cache, `sha512:${s.sha512}`));
  });

  it('deletes a download whose checksum does not match and prints both hashes', async () => {
    const s = await setup();
    const wrong = 'b'.repeat(64);
    const err = await fetchToCache(fetchPlan(pathToFileURL(s.file).href, { sha256: wrong }), { cacheDir: s.cache, baseDir: s.dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect((err as Error).message).toBe(
      `recipe.yaml:3:5: fetch ${pathToFileURL(s.file).href}: sha256 mismatch: expected ${wrong}, got ${s.sha256} (the download was deleted)`,
    );
    expect(await readdir(s.cache)).toEqual([]);
  });

  it('uses a file already in the cache under the expected name without downloading', async () => {
    const s = await setup();
    await mkdir(s.cache, { recursive: true });
    await writeFile(join(s.cache, `sha256:${s.sha256}`), 'cached copy');
    // The URI does not even exist: nothing is read from it.
    const result = await fetchToCache(fetchPlan('file:///nonexistent/archive.tar.gz', { sha256: s.sha256 }), { cacheDir: s.cache, baseDir: s.dir });
    expect(result.cached).toBe(true);
    expect(await readFile(result.path, 'utf8')).toBe('cached copy');
  });

  it('downloads over http and reports HTTP errors', async () => {
    const s = await setup();
    const server: Server = createServer((req, res) => {
      if (req.url === '/hello.tar.gz') {
        res.writeHead(200, { 'content-type': 'application/gzip' });
        res.end(s.content);
      } else {
        res.writeHead(404);
        res.end('not here');
      }
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const result = await fetchToCache(fetchPlan(`${base}/hello.tar.gz`, { sha256: s.sha256 }), { cacheDir: s.cache, baseDir: s.dir });
      expect(await readFile(result.path, 'utf8')).toBe(s.content);
      await expect(fetchToCache(fetchPlan(`${base}/missing.tar.gz`, { sha256: 'c'.repeat(64) }), { cacheDir: s.cache, baseDir: s.dir })).rejects.toThrow(
        `recipe.yaml:3:5: fetch ${base}/missing.tar.gz: HTTP 404 Not Found`,
      );
      expect((await readdir(s.cache)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    } finally {
      await new Promise((done) => server.close(done));
    }
  });

  it('names a missing file and an unsupported scheme', async () => {
    const s = await setup();
    await expect(fetchToCache(fetchPlan('nope.tar.gz', { sha256: 'd'.repeat(64) }), { cacheDir: s.cache, baseDir: s.dir })).rejects.toThrow(
      `recipe.yaml:3:5: fetch nope.tar.gz: ${join(s.dir, 'nope.tar.gz')}: no such file`,
    );
    await expect(fetchToCache(fetchPlan('ftp://example.com/x.tar.gz', { sha256: 'd'.repeat(64) }), { cacheDir: s.cache, baseDir: s.dir })).rejects.toThrow(
      BuilderError,
    );
    await expect(fetchToCache(fetchPlan('ftp://example.com/x.tar.gz', { sha256: 'd'.repeat(64) }), { cacheDir: s.cache, baseDir: s.dir })).rejects.toThrow(
      /unsupported URI scheme "ftp:"/,
    );
  });
});
