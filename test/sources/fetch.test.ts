import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BuilderError } from '../../src/errors.ts';
import type { FetchSourcePlan } from '../../src/pipeline/plan.ts';
import { ChecksumMismatchError, type FetchOptions, fetchToCache } from '../../src/sources/fetch.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const sha = (algorithm: 'sha256' | 'sha512', data: Buffer | string) => createHash(algorithm).update(data).digest('hex');

function fetchPlan(uri: string, hashes: { sha256?: string; sha512?: string }, fields: Partial<FetchSourcePlan> = {}): FetchSourcePlan {
  return {
    kind: 'fetch',
    uri,
    ...hashes,
    cacheName: hashes.sha256 ? `sha256:${hashes.sha256}` : `sha512:${hashes.sha512}`,
    timeout: 5,
    dnsTimeout: 20,
    attempts: 5,
    purl: { name: 'hello', version: '1.0' },
    source: 'recipe.yaml:3:5',
    ...fields,
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
    expect(result).toEqual({ path: join(s.cache, `sha256:${s.sha256}`), cached: false, bytes: s.content.length, sha256: s.sha256 });
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

  it('fetches without a checksum only with expected-none, caching the download under its own sha256', async () => {
    const s = await setup();
    const lines: string[] = [];
    const uri = pathToFileURL(s.file).href;
    const plan = fetchPlan(uri, {}, { unverified: true, cacheName: 'unverified/by-uri' });
    const first = await fetchToCache(plan, { cacheDir: s.cache, baseDir: s.dir, log: (l) => lines.push(l) });
    expect(first).toEqual({ path: join(s.cache, 'unverified/by-uri'), cached: false, bytes: s.content.length, sha256: s.sha256 });
    expect(await readFile(first.path, 'utf8')).toBe(s.content);
    // The content is stored under its sha256 like any other download; the plan's name is a link to it.
    expect((await readdir(s.cache)).sort()).toEqual([`sha256:${s.sha256}`, 'unverified']);
    expect((await stat(first.path)).ino).toBe((await stat(join(s.cache, `sha256:${s.sha256}`))).ino);
    expect(lines).toEqual([
      `fetch: ${uri}: ${s.content.length} bytes, NOT verified (expected-none: no checksum was given); cached as sha256:${s.sha256}`,
    ]);
    // It is fetched again every time: a changed upstream file shows in the cache under its new checksum.
    await writeFile(s.file, 'changed upstream\n');
    const second = await fetchToCache(plan, { cacheDir: s.cache, baseDir: s.dir });
    expect(second.cached).toBe(false);
    expect(second.sha256).toBe(sha('sha256', 'changed upstream\n'));
    expect(await readFile(second.path, 'utf8')).toBe('changed upstream\n');
    expect((await readdir(s.cache)).sort()).toEqual([`sha256:${s.sha256}`, `sha256:${second.sha256}`, 'unverified'].sort());
    expect(await readdir(join(s.cache, 'unverified'))).toEqual(['by-uri']);
  });
});

/** An http server on 127.0.0.1 whose handler sees how many requests came before. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<{ base: string; requests: IncomingMessage[]; close: () => Promise<void> }> {
  const requests: IncomingMessage[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req);
    handler(req, res, requests.length);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    },
  };
}

describe('host-side fetch over http: retries, timeouts, resuming', () => {
  // Short waits between attempts keep the tests quick; the waits themselves are not asserted.
  const quick = (cache: string, dir: string, lines: string[] = []): FetchOptions => ({
    cacheDir: cache,
    baseDir: dir,
    log: (l) => lines.push(l),
    backoff: { initialMs: 5, maxMs: 20 },
  });

  it('retries a server that fails the first requests, up to retry-limit attempts in all', async () => {
    const s = await setup();
    const server = await serve((_req, res, n) => {
      if (n <= 2) {
        res.writeHead(503, { 'retry-after': '0' });
        res.end('busy');
      } else {
        res.writeHead(200, { 'content-length': String(s.content.length) });
        res.end(s.content);
      }
    });
    try {
      const lines: string[] = [];
      const result = await fetchToCache(fetchPlan(`${server.base}/x.tar.gz`, { sha256: s.sha256 }, { attempts: 3 }), quick(s.cache, s.dir, lines));
      expect(await readFile(result.path, 'utf8')).toBe(s.content);
      expect(server.requests).toHaveLength(3);
      expect(lines[0]).toMatch(new RegExp(`^fetch: ${server.base}/x.tar.gz: attempt 1 of 3 failed \\(HTTP 503 Service Unavailable\\); retrying in `));
      expect(lines[1]).toMatch(/attempt 2 of 3 failed \(HTTP 503 Service Unavailable\)/);
      expect(lines[2]).toMatch(/verified$/);
    } finally {
      await server.close();
    }
  });

  it('gives up after retry-limit attempts, and does not retry what cannot change (404, checksum mismatch)', async () => {
    const s = await setup();
    const server = await serve((req, res) => {
      if (req.url === '/busy') res.writeHead(500).end('down');
      else if (req.url === '/wrong') res.writeHead(200).end('other content');
      else res.writeHead(404).end('no');
    });
    try {
      const plan = (path: string) => fetchPlan(`${server.base}${path}`, { sha256: s.sha256 }, { attempts: 2 });
      await expect(fetchToCache(plan('/busy'), quick(s.cache, s.dir))).rejects.toThrow(
        `recipe.yaml:3:5: fetch ${server.base}/busy: HTTP 500 Internal Server Error (after 2 attempts)`,
      );
      expect(server.requests).toHaveLength(2);
      await expect(fetchToCache(plan('/missing'), quick(s.cache, s.dir))).rejects.toThrow(`fetch ${server.base}/missing: HTTP 404 Not Found`);
      expect(server.requests).toHaveLength(3);
      await expect(fetchToCache(plan('/wrong'), quick(s.cache, s.dir))).rejects.toThrow(ChecksumMismatchError);
      expect(server.requests).toHaveLength(4);
      expect(await readdir(s.cache)).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('retries a refused connection', async () => {
    const s = await setup();
    const server = await serve((_req, res) => res.end());
    const base = server.base;
    await server.close();
    const lines: string[] = [];
    await expect(fetchToCache(fetchPlan(`${base}/x`, { sha256: s.sha256 }, { attempts: 2 }), quick(s.cache, s.dir, lines))).rejects.toThrow(
      /ECONNREFUSED.*\(after 2 attempts\)$/,
    );
    expect(lines).toHaveLength(1);
  });

  it('abandons an attempt that makes no progress for `timeout` seconds, but not a slow steady one', async () => {
    const s = await setup();
    const server = await serve((req, res) => {
      res.writeHead(200, { 'content-length': String(s.content.length) });
      if (req.url === '/stalls') {
        // Half the body, then nothing: the attempt must time out rather than hang.
        res.write(s.content.slice(0, 100));
        return;
      }
      // The whole body in pieces, each within the timeout, taking longer than the timeout in all.
      const pieces = Array.from({ length: 6 }, (_, i) => s.content.slice(i * 3000, (i + 1) * 3000)).filter((p) => p !== '');
      if (pieces.join('') !== s.content) throw new Error('the pieces must make up the content');
      const next = () => {
        const piece = pieces.shift();
        if (piece === undefined) res.end();
        else {
          res.write(piece);
          setTimeout(next, 100);
        }
      };
      next();
    });
    try {
      await expect(
        fetchToCache(fetchPlan(`${server.base}/stalls`, { sha256: s.sha256 }, { timeout: 0.5, attempts: 2 }), quick(s.cache, s.dir)),
      ).rejects.toThrow(`fetch ${server.base}/stalls: timed out: nothing received for 0.5 s (after 2 attempts)`);
      expect(server.requests).toHaveLength(2);
      const steady = await fetchToCache(fetchPlan(`${server.base}/steady`, { sha256: s.sha256 }, { timeout: 0.5, attempts: 1 }), quick(s.cache, s.dir));
      expect(await readFile(steady.path, 'utf8')).toBe(s.content);
    } finally {
      await server.close();
    }
  });

  it('resumes a transfer that broke off, with a Range request, when the server allows it', async () => {
    const s = await setup();
    const body = Buffer.from(s.content);
    const server = await serve((req, res, n) => {
      const headers = { 'accept-ranges': 'bytes', etag: '"v1"' };
      if (n === 1) {
        res.writeHead(200, { ...headers, 'content-length': String(body.length) });
        // Part of the body, then (once the client has had time to store it) the end of the connection.
        res.write(body.subarray(0, 7000), () => setTimeout(() => res.socket?.end(), 200));
        return;
      }
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      if (req.headers['if-range'] !== '"v1"' || start === 0) {
        res.writeHead(200, headers).end(body);
        return;
      }
      res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, 'content-length': String(body.length - start) });
      res.end(body.subarray(start));
    });
    try {
      const lines: string[] = [];
      const result = await fetchToCache(fetchPlan(`${server.base}/big.tar.gz`, { sha256: s.sha256, sha512: s.sha512 }), quick(s.cache, s.dir, lines));
      expect(await readFile(result.path, 'utf8')).toBe(s.content);
      expect(server.requests).toHaveLength(2);
      const resumedAt = Number(/^bytes=(\d+)-$/.exec(server.requests[1]!.headers.range ?? '')?.[1]);
      expect(resumedAt).toBeGreaterThan(0);
      expect(lines).toContain(`fetch: ${server.base}/big.tar.gz: resuming at byte ${resumedAt}`);
    } finally {
      await server.close();
    }
  });

  it('follows redirects and resolves host names', async () => {
    const s = await setup();
    const server = await serve((req, res) => {
      if (req.url === '/old') res.writeHead(302, { location: '/new' }).end();
      else res.writeHead(200).end(s.content);
    });
    try {
      const viaName = server.base.replace('127.0.0.1', 'localhost');
      const result = await fetchToCache(fetchPlan(`${viaName}/old`, { sha256: s.sha256 }), quick(s.cache, s.dir));
      expect(await readFile(result.path, 'utf8')).toBe(s.content);
      expect(server.requests.map((r) => r.url)).toEqual(['/old', '/new']);
    } finally {
      await server.close();
    }
  });
});
