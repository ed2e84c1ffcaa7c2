// The root provider against real repositories made by the tests: installing, verifying, caching, refusing.
import { createServer, type Server } from 'node:http';
import { createReadStream } from 'node:fs';
import { appendFile, lstat, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RootProvider } from '../../src/environment/root-provider.ts';
import type { EnvironmentSpec } from '../../src/environment/provider.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { ARCH, buildPackage, buildRawPackage, buildRepo, makeKey, type TestKey, writeIndex } from './repo.ts';

const tempDir = useTempDirs();
const noLog = (): void => undefined;

function spec(repo: string, key: TestKey | undefined, packages: string[], extra: Partial<EnvironmentSpec> = {}): EnvironmentSpec {
  return { repositories: [repo], keyring: key ? [key.publicPath] : [], packages, arch: ARCH, ...extra };
}

/** Everything under the cache's roots/ and tmp/: what a failed build must not leave behind. */
async function cacheLeftovers(cacheDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ['roots', 'tmp']) {
    for (const n of await readdir(join(cacheDir, sub)).catch(() => [] as string[])) out.push(`${sub}/${n}`);
  }
  return out;
}

let shared: { dir: string; key: TestKey; repo: string };

beforeAll(async () => {
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'builder-envtest-'));
  const key = await makeKey(join(dir, 'keys'));
  const repo = join(dir, 'repo');
  await buildRepo(
    repo,
    [
      {
        name: 'hello',
        version: '2.12-r0',
        depends: ['so:libgreet.so.1', 'cmd:sh'],
        files: { 'usr/': '', 'usr/bin/': '', 'usr/bin/hello': '#!/bin/sh\necho hello\n', 'usr/bin/hi': '->hello' },
        modes: { 'usr/bin/hello': 0o755 },
      },
      { name: 'libgreet', version: '1.0-r0', provides: ['so:libgreet.so.1=1.0'], files: { 'usr/': '', 'usr/lib/': '', 'usr/lib/libgreet.so.1': 'ELF-ish\n' } },
      { name: 'mysh', version: '1-r0', provides: ['cmd:sh=1'], files: { 'bin/': '', 'bin/sh': 'not really a shell\n' }, modes: { 'bin/sh': 0o755 } },
      { name: 'extra', version: '1-r0' },
    ],
    key.key,
  );
  shared = { dir, key, repo };
});

afterAll(async () => {
  const { rm } = await import('node:fs/promises');
  await rm(shared.dir, { recursive: true, force: true });
});

describe('RootProvider: APK roots', () => {
  it('installs packages with dependencies, modes and symlinks, and records an apk database', async () => {
    const cacheDir = await tempDir();
    const provider = new RootProvider({ cacheDir });
    const root = await provider.prepare(spec(shared.repo, shared.key, ['hello']), noLog);
    const dir = root.directory!;
    expect(root.mounts).toEqual([{ source: dir, target: '/', readonly: true }]);
    expect(root.runAs).toEqual({ uid: 1000, gid: 1000 });
    expect(await readFile(join(dir, 'usr/bin/hello'), 'utf8')).toBe('#!/bin/sh\necho hello\n');
    expect((await stat(join(dir, 'usr/bin/hello'))).mode & 0o777).toBe(0o755);
    expect(await readlink(join(dir, 'usr/bin/hi'))).toBe('hello');
    expect(await readFile(join(dir, 'usr/lib/libgreet.so.1'), 'utf8')).toBe('ELF-ish\n');
    await expect(stat(join(dir, 'usr/share/extra'))).rejects.toThrow();

    const installed = await readFile(join(dir, 'lib/apk/db/installed'), 'utf8');
    const stanzas = installed.trim().split('\n\n');
    expect(stanzas.map((s) => /^P:(.*)$/m.exec(s)?.[1])).toEqual(['libgreet', 'mysh', 'hello']);
    const hello = stanzas[2]!;
    expect(hello).toMatch(/^C:Q1/m);
    expect(hello).toContain('V:2.12-r0');
    expect(hello).toContain('F:usr/bin\nR:hello\na:0:0:755\nZ:Q1');
    expect(hello).toContain('R:hi\na:0:0:777');
    expect(await readFile(join(dir, 'etc/apk/world'), 'utf8')).toBe('hello\n');
    expect(await readFile(join(dir, 'etc/apk/arch'), 'utf8')).toBe(`${ARCH}\n`);
    expect(await readFile(join(dir, 'etc/apk/keys/test.rsa.pub'), 'utf8')).toContain('BEGIN PUBLIC KEY');
    expect(await readFile(join(dir, 'etc/passwd'), 'utf8')).toContain('build:x:1000:1000:builder:/home/build:/bin/sh');
    for (const d of ['home/build', 'var/cache/melange', 'tmp', 'proc', 'dev']) expect((await stat(join(dir, d))).isDirectory()).toBe(true);
    expect(provider.stats).toEqual({ requestHits: 0, resolutions: 1, packagesInstalled: 3, layers: 0, debsDownloaded: 0 });
  });

  it('reuses the cached root without resolving or extracting, and makes a new root for a new package list', async () => {
    const cacheDir = await tempDir();
    const logs: string[] = [];
    const first = new RootProvider({ cacheDir });
    const a = await first.prepare(spec(shared.repo, shared.key, ['hello']), noLog);
    // A new provider (a new build process) over the same cache.
    const second = new RootProvider({ cacheDir });
    const b = await second.prepare(spec(shared.repo, shared.key, ['hello']), (l) => logs.push(l));
    expect(b.digest).toBe(a.digest);
    expect(b.directory).toBe(a.directory);
    expect(second.stats).toEqual({ requestHits: 1, resolutions: 0, packagesInstalled: 0, layers: 0, debsDownloaded: 0 });
    expect(second.cache.stats.created).toBe(0);
    expect(logs.some((l) => l.startsWith('environment: cache hit') && l.includes('no resolution'))).toBe(true);

    const c = await second.prepare(spec(shared.repo, shared.key, ['hello', 'extra']), noLog);
    expect(c.digest).not.toBe(a.digest);
    expect(await readFile(join(c.directory!, 'usr/share/extra/version'), 'utf8')).toBe('1-r0\n');
    expect(second.stats.resolutions).toBe(1);
    expect((await readdir(join(cacheDir, 'roots'))).length).toBe(2);

    // Same packages asked differently (order, a virtual): resolved again, but the same root is reused.
    const d = await second.prepare(spec(shared.repo, shared.key, ['so:libgreet.so.1', 'hello']), noLog);
    expect(d.digest).toBe(a.digest);
    expect(second.cache.stats.created).toBe(1);
  });

  it('makes a root once when concurrent builds ask for it', async () => {
    const cacheDir = await tempDir();
    const providers = [new RootProvider({ cacheDir }), new RootProvider({ cacheDir }), new RootProvider({ cacheDir })];
    const roots = await Promise.all(providers.map((p) => p.prepare(spec(shared.repo, shared.key, ['hello']), noLog)));
    expect(new Set(roots.map((r) => r.digest)).size).toBe(1);
    expect(providers.reduce((n, p) => n + p.cache.stats.created, 0)).toBe(1);
    expect(providers.reduce((n, p) => n + p.cache.stats.hits, 0)).toBe(2);
    expect(await cacheLeftovers(cacheDir)).toEqual([`roots/${roots[0]!.digest}`]);
  });

  it('applies accounts and run-as', async () => {
    const cacheDir = await tempDir();
    const root = await new RootProvider({ cacheDir }).prepare(
      spec(shared.repo, shared.key, ['extra'], {
        accounts: {
          runAs: 'builder2',
          users: [{ username: 'builder2', uid: 2000, gid: 2000, homedir: '/srv/b2' }],
          groups: [{ groupname: 'builder2', gid: 2000, members: ['builder2'] }, { groupname: 'build', gid: 1000, members: ['build', 'builder2'] }],
        },
      }),
      noLog,
    );
    expect(root.runAs).toEqual({ uid: 2000, gid: 2000 });
    const passwd = await readFile(join(root.directory!, 'etc/passwd'), 'utf8');
    expect(passwd).toContain('builder2:x:2000:2000:builder2:/srv/b2:/bin/sh');
    expect(passwd).toContain('root:x:0:0:');
    const group = await readFile(join(root.directory!, 'etc/group'), 'utf8');
    expect(group).toContain('build:x:1000:build,builder2');
    expect((await stat(join(root.directory!, 'srv/b2'))).isDirectory()).toBe(true);
    expect(await readFile(join(root.directory!, 'etc/hosts'), 'utf8')).toContain('localhost');
    expect((await lstat(join(root.directory!, 'etc/resolv.conf'))).isFile()).toBe(true);
  });

  it('downloads from an http repository into the package cache', async () => {
    const requests: string[] = [];
    const server: Server = createServer((req, res) => {
      requests.push(req.url ?? '');
      const file = join(shared.repo, decodeURIComponent((req.url ?? '/').replace(/^\/repo\//, '')));
      stat(file).then(
        (st) => {
          res.writeHead(200, { 'content-length': st.size, etag: `"${st.size}-${st.mtimeMs}"` });
          createReadStream(file).pipe(res);
        },
        () => {
          res.writeHead(404).end();
        },
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const cacheDir = await tempDir();
      const apkCacheDir = await tempDir();
      const provider = new RootProvider({ cacheDir, apkCacheDir });
      const root = await provider.prepare(spec(`http://127.0.0.1:${port}/repo`, shared.key, ['hello']), noLog);
      expect(await readFile(join(root.directory!, 'usr/bin/hello'), 'utf8')).toContain('echo hello');
      expect(requests.filter((u) => u.endsWith('.apk')).sort()).toEqual([
        `/repo/${ARCH}/hello-2.12-r0.apk`,
        `/repo/${ARCH}/libgreet-1.0-r0.apk`,
        `/repo/${ARCH}/mysh-1-r0.apk`,
      ]);
      expect((await readdir(apkCacheDir)).filter((n) => n.endsWith('.apk'))).toHaveLength(3);
      requests.length = 0;
      const again = await new RootProvider({ cacheDir, apkCacheDir }).prepare(spec(`http://127.0.0.1:${port}/repo`, shared.key, ['hello']), noLog);
      expect(again.digest).toBe(root.digest);
      expect(requests).toEqual([`/repo/${ARCH}/APKINDEX.tar.gz`]);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('RootProvider: refusals and bad input leave nothing in the cache', () => {
  async function refused(s: EnvironmentSpec): Promise<{ message: string; leftovers: string[] }> {
    const cacheDir = await tempDir();
    let message = '';
    try {
      await new RootProvider({ cacheDir }).prepare(s, noLog);
      message = '(no error)';
    } catch (err) {
      message = [(err as Error).message, ...((err as { details?: string[] }).details ?? [])].join('\n');
    }
    return { message, leftovers: await cacheLeftovers(cacheDir) };
  }

  it('refuses an index signed by an unknown key, and accepts it with ignoreSignatures', async () => {
    const dir = await tempDir();
    const stranger = await makeKey(join(dir, 'stranger'), 'stranger.rsa');
    const repo = join(dir, 'repo');
    await buildRepo(repo, [{ name: 'extra', version: '1-r0' }], stranger.key);
    const r = await refused(spec(repo, shared.key, ['extra']));
    expect(r.message).toMatch(/UNTRUSTED signature: signed by stranger\.rsa\.pub/);
    expect(r.message).toContain('--keyring-append');
    expect(r.leftovers).toEqual([]);
    const ok = await refused(spec(repo, shared.key, ['extra'], { ignoreSignatures: true }));
    expect(ok.message).toBe('(no error)');
  });

  it('refuses an unsigned index', async () => {
    const dir = await tempDir();
    const repo = join(dir, 'repo');
    await buildRepo(repo, [{ name: 'extra', version: '1-r0' }], undefined);
    const r = await refused(spec(repo, shared.key, ['extra']));
    expect(r.message).toMatch(/UNTRUSTED signature: not signed/);
  });

  it('refuses a package whose data was tampered with after indexing', async () => {
    const dir = await tempDir();
    const repo = join(dir, 'repo');
    const entries = await buildRepo(repo, [{ name: 'extra', version: '1-r0', files: { 'etc/': '', 'etc/extra.conf': 'x'.repeat(5000) } }], shared.key.key);
    const file = join(repo, ARCH, 'extra-1-r0.apk');
    // Appending another gzip member keeps the control stream (and so signature and C: checksum) intact.
    const { gzipSync } = await import('node:zlib');
    await appendFile(file, gzipSync(Buffer.alloc(1024)));
    await writeIndex(repo, entries.map((e) => ({ ...e })), shared.key.key);
    const r = await refused(spec(repo, shared.key, ['extra']));
    expect(r.message).toMatch(/package extra-1-r0 .*BAD signature: data does not match its datahash/);
    expect(r.leftovers).toEqual([]);
  });

  it('refuses a package whose control part differs from the index', async () => {
    const dir = await tempDir();
    const repo = join(dir, 'repo');
    const entries = await buildRepo(repo, [{ name: 'extra', version: '1-r0' }], shared.key.key);
    await buildPackage(repo, { name: 'extra', version: '1-r0', files: { 'x/': '', 'x/y': 'changed' } }, shared.key.key);
    await writeIndex(repo, entries, shared.key.key);
    const r = await refused(spec(repo, shared.key, ['extra']));
    expect(r.message).toMatch(/control checksum .* does not match the index/);
  });

  for (const [what, entries, pattern] of [
    ['a ../ path', [{ name: 'usr/', type: 'directory' }, { name: 'usr/../../x', type: 'file', content: 'evil' }], /refusing path with "\.\."/],
    ['an absolute path', [{ name: '/etc/x', type: 'file', content: 'evil' }], /refusing absolute path "\/etc\/x"/],
    [
      'a file written through a symlink leaving the root',
      [{ name: 'etc/', type: 'directory' }, { name: 'etc/escape', type: 'symlink', linkname: '../../../../../../tmp' }, { name: 'etc/escape/x', type: 'file', content: 'evil' }],
      /leads outside the root/,
    ],
  ] as const) {
    it(`refuses a package with ${what}`, async () => {
      const dir = await tempDir();
      const repo = join(dir, 'repo');
      const entry = await buildRawPackage(repo, 'evil', '1-r0', [...entries], shared.key.key);
      await writeIndex(repo, [entry], shared.key.key);
      const r = await refused(spec(repo, shared.key, ['evil']));
      expect(r.message).toMatch(/package evil-1-r0/);
      expect(r.message).toMatch(pattern);
      expect(r.leftovers).toEqual([]);
      await expect(stat('/tmp/x')).rejects.toThrow();
    });
  }

  it('names an unknown package, an unsatisfiable constraint and the repositories searched', async () => {
    const r = await refused(spec(shared.repo, shared.key, ['hello', 'nosuchpkg', 'extra>=5']));
    expect(r.message).toContain('no package provides nosuchpkg');
    expect(r.message).toContain('extra: no version satisfies extra>=5 (required by the build environment); available: 1-r0');
    expect(r.message).toContain(`repositories searched: ${join(shared.repo, ARCH)}`);
    expect(r.leftovers).toEqual([]);
  });

  it('reports an unreachable repository: a missing directory and a closed port', async () => {
    const dir = await tempDir();
    const missing = await refused(spec(join(dir, 'nope'), shared.key, ['hello']));
    expect(missing.message).toBe(`repository ${join(dir, 'nope')}: ${join(dir, 'nope', ARCH)} does not exist`);
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise((r) => server.close(r));
    const closed = await refused(spec(`http://127.0.0.1:${port}/repo`, shared.key, ['hello']));
    expect(closed.message).toMatch(new RegExp(`^repository http://127.0.0.1:${port}/repo: http://127.0.0.1:${port}/repo/${ARCH}/APKINDEX.tar.gz is unreachable: .*ECONNREFUSED`));
    expect(closed.leftovers).toEqual([]);
  });

  it('reports a bad keyring path', async () => {
    const r = await refused({ ...spec(shared.repo, undefined, ['hello']), keyring: ['/nonexistent/key.rsa.pub'] });
    expect(r.message).toMatch(/^cannot read keyring path \/nonexistent\/key\.rsa\.pub/);
  });

  it('reports a corrupt index', async () => {
    const dir = await tempDir();
    const repo = join(dir, 'repo');
    await buildRepo(repo, [{ name: 'extra', version: '1-r0' }], shared.key.key);
    const index = join(repo, ARCH, 'APKINDEX.tar.gz');
    const bytes = await readFile(index);
    await writeFile(index, bytes.subarray(0, bytes.length - 40));
    const r = await refused(spec(repo, shared.key, ['extra']));
    expect(r.message).toContain(index);
    expect(r.leftovers).toEqual([]);
  });

  it('reports a corrupt package', async () => {
    const dir = await tempDir();
    const repo = join(dir, 'repo');
    await buildRepo(repo, [{ name: 'extra', version: '1-r0' }], shared.key.key);
    const file = join(repo, ARCH, 'extra-1-r0.apk');
    await writeFile(file, (await readFile(file)).subarray(0, 100));
    const r = await refused(spec(repo, shared.key, ['extra']));
    expect(r.message).toMatch(/package extra-1-r0 from .*extra-1-r0\.apk/);
    expect(r.leftovers).toEqual([]);
  });
});
