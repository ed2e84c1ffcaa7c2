// Registry bases against a real docker-registry on 127.0.0.1 (anonymous, and behind bearer-token auth), fed
// by skopeo from OCI layouts written here.
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBaseRef } from '../../src/environment/base.ts';
import { parseChallenge, RegistryError } from '../../src/environment/registry/client.ts';
import { pullImage } from '../../src/environment/registry/pull.ts';
import { parseImageReference, registryBaseUrl } from '../../src/environment/registry/reference.ts';
import { RootProvider } from '../../src/environment/root-provider.ts';
import { expectLayered, LOWER, type TarItem, UPPER, writeOciLayout } from '../helpers/oci-image.ts';
import { pushLayout, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { ARCH } from './repo.ts';

const tempDir = useTempDirs();
const noLog = (): void => undefined;

const ARM: TarItem[] = [{ name: 'etc/', type: 'directory' }, { name: 'etc/arch', body: 'arm64\n' }];

let work = '';
let open: TestRegistry;
let token: TestRegistry;
let digests: Record<string, string> = {};

beforeAll(async () => {
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  work = await mkdtemp(join(tmpdir(), 'builder-registry-'));
  const layout = join(work, 'layout');
  digests = await writeOciLayout(layout, [
    { arch: 'amd64', layers: [LOWER, UPPER] },
    { arch: 'arm64', layers: [ARM] },
  ]);
  [open, token] = await Promise.all([startRegistry(join(work, 'open')), startRegistry(join(work, 'token'), { token: true })]);
  await pushLayout(layout, open.host, 'team/base:1');
  await pushLayout(layout, token.host, 'team/base:1');
}, 120_000);

afterAll(async () => {
  await Promise.all([open?.stop(), token?.stop()]);
  const { rm } = await import('node:fs/promises');
  if (work) await rm(work, { recursive: true, force: true });
});


describe('image references', () => {
  it('tells registry references from paths', () => {
    expect(parseImageReference('127.0.0.1:5000/team/base:1')).toEqual({ registry: '127.0.0.1:5000', repository: 'team/base', tag: '1', text: '127.0.0.1:5000/team/base:1' });
    const pinned = `ghcr.io/a/b@sha256:${'a'.repeat(64)}`;
    expect(parseImageReference(pinned)).toMatchObject({ registry: 'ghcr.io', repository: 'a/b', digest: `sha256:${'a'.repeat(64)}` });
    expect(parseImageReference('localhost/x:latest')).toMatchObject({ registry: 'localhost', repository: 'x', tag: 'latest' });
    for (const path of ['image.tar', './x/y:1', '/abs/img.tar', 'build.out/image.tar', 'images/base:1', 'ghcr.io/a/b']) {
      expect(parseImageReference(path), path).toBeUndefined();
    }
    expect(registryBaseUrl(parseImageReference('docker.io/library/debian:12')!)).toBe('https://registry-1.docker.io');
    expect(registryBaseUrl(parseImageReference('ghcr.io/a/b:1')!)).toBe('https://ghcr.io');
    expect(registryBaseUrl(parseImageReference('localhost:5000/a:1')!)).toBe('http://localhost:5000');
    expect(parseBaseRef('oci:127.0.0.1:5000/team/base:1', '/w', '--base')).toMatchObject({ kind: 'oci-registry', ref: { repository: 'team/base' } });
    expect(parseBaseRef('oci:build.out/image.tar', '/w', '--base')).toEqual({ kind: 'oci', path: '/w/build.out/image.tar' });
  });

  it('parses bearer challenges', () => {
    expect(parseChallenge('Bearer realm="http://t/token",service="reg",scope="repository:a/b:pull"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'http://t/token', service: 'reg', scope: 'repository:a/b:pull' },
    });
    expect(parseChallenge('Basic realm="r"')?.scheme).toBe('basic');
  });
});

describe('registry bases', () => {
  it('pulls anonymously, applies the layers with whiteouts, shows progress and reuses the root', async () => {
    const dir = await tempDir();
    const logs: string[] = [];
    const provider = new RootProvider({ cacheDir: join(dir, 'cache') });
    const base = `oci:${open.host}/team/base:1`;
    const root = await provider.prepare({ repositories: [], keyring: [], packages: [], arch: ARCH, base }, (l) => logs.push(l));
    await expectLayered(root.directory!);
    expect(logs.some((l) => /pulling 127\.0\.0\.1:\d+\/team\/base:1: 2\/2 layers, .* of .*\(100%\)/.test(l))).toBe(true);
    expect(logs.some((l) => /applying layer 2\/2/.test(l))).toBe(true);
    const blobs = await readdir(join(dir, 'cache/blobs/sha256'));
    expect(blobs).toHaveLength(2);

    const again = await new RootProvider({ cacheDir: join(dir, 'cache') }).prepare({ repositories: [`oci:${open.host}/team/base:1`], keyring: [], packages: [], arch: ARCH }, noLog);
    expect(again.digest).toBe(root.digest);
  });

  it('pulls through bearer-token auth, by digest, and the platform for the arch', async () => {
    const dir = await tempDir();
    const before = token.tokenRequests.length;
    const root = await new RootProvider({ cacheDir: join(dir, 'cache') }).prepare({ repositories: [], keyring: [], packages: [], arch: ARCH, base: `oci:${token.host}/team/base:1` }, noLog);
    await expectLayered(root.directory!);
    expect(token.tokenRequests.length).toBeGreaterThan(before);
    expect(token.tokenRequests.at(-1)).toContain('scope=repository%3Ateam%2Fbase%3Apull');

    const arm = await new RootProvider({ cacheDir: join(dir, 'cache') }).prepare(
      { repositories: [], keyring: [], packages: [], arch: 'aarch64', base: `oci:${token.host}/team/base@${digests.arm64}` },
      noLog,
    );
    expect(await readFile(join(arm.directory!, 'etc/arch'), 'utf8')).toBe('arm64\n');
  });

  it('reuses cached layers without downloading them again', async () => {
    const dir = await tempDir();
    const ref = parseImageReference(`${open.host}/team/base:1`)!;
    const first: string[] = [];
    const pulled = await pullImage(ref, ARCH, { blobDir: dir, log: (l) => first.push(l) });
    expect(pulled.manifestDigest).toBe(digests.amd64);
    const mtimes = await Promise.all(pulled.layers.map(async (l) => (await stat(l.file)).mtimeMs));
    const second: string[] = [];
    const again = await pullImage(ref, ARCH, { blobDir: dir, log: (l) => second.push(l) });
    expect(await Promise.all(again.layers.map(async (l) => (await stat(l.file)).mtimeMs))).toEqual(mtimes);
    expect(second.at(-1)).toMatch(/2\/2 layers/);

    // A damaged cache entry is noticed and fetched again.
    await writeFile(pulled.layers[0]!.file, 'garbage');
    const third: string[] = [];
    await pullImage(ref, ARCH, { blobDir: dir, log: (l) => third.push(l) });
    expect(third[0]).toMatch(/cached layer sha256:[0-9a-f]{12} is damaged; fetching it again/);
    expect(`sha256:${createHash('sha256').update(await readFile(pulled.layers[0]!.file)).digest('hex')}`).toBe(pulled.layers[0]!.digest);
  });

  it('fails clearly on a missing tag, a platform not offered, refused tokens and a tampered blob', async () => {
    const dir = await tempDir();
    const pull = (text: string, arch = ARCH): Promise<unknown> => pullImage(parseImageReference(text)!, arch, { blobDir: dir, log: noLog, backoffMs: 10 });
    await expect(pull(`${open.host}/team/base:nope`)).rejects.toThrow(new RegExp(`${open.host}/team/base:nope: manifest nope: HTTP 404 not found`));
    await expect(pull(`${open.host}/team/base:1`, 'riscv64')).rejects.toThrow(/team\/base:1: no image for linux\/riscv64 \(riscv64\); the index offers linux\/amd64, linux\/arm64/);

    token.tokenMode = 'deny';
    try {
      await expect(pull(`${token.host}/team/base:1`)).rejects.toThrow(/team\/base:1: manifest 1: HTTP 401 unauthorized/);
    } finally {
      token.tokenMode = 'grant';
    }

    // The registry serves what its storage holds: flipping a byte of a stored layer makes it send a blob that
    // does not match its digest.
    const layout = join(dir, 'layout');
    const d = await writeOciLayout(layout, [{ arch: 'amd64', layers: [[{ name: 'f', body: 'tamper me\n' }]] }]);
    await pushLayout(layout, open.host, 'team/tampered:1');
    const manifest = JSON.parse(await readFile(join(layout, 'blobs/sha256', d.amd64!.slice(7)), 'utf8')) as { layers: { digest: string }[] };
    const layer = manifest.layers[0]!.digest.slice(7);
    const data = join(open.storage, 'docker/registry/v2/blobs/sha256', layer.slice(0, 2), layer, 'data');
    const bytes = await readFile(data);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    await writeFile(data, bytes);
    const blobDir = join(dir, 'blobs');
    await expect(pullImage(parseImageReference(`${open.host}/team/tampered:1`)!, ARCH, { blobDir, log: noLog })).rejects.toThrow(
      /team\/tampered:1: layer sha256:[a-f0-9]{64}: digest mismatch/,
    );
    expect(await readdir(join(blobDir, 'sha256'))).toEqual([]);
  });

  it('retries a registry answering 5xx and then names the reference and status', async () => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.statusCode = 503;
      res.end('{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    try {
      const text = `127.0.0.1:${port}/team/base:1`;
      const err = await pullImage(parseImageReference(text)!, ARCH, { blobDir: await tempDir(), log: noLog, backoffMs: 5 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as Error).message).toBe(`${text}: manifest 1: HTTP 503 registry server error (UNAVAILABLE: maintenance)`);
      expect(hits).toBe(3);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
