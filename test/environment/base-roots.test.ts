// dir: and oci: bases, made from trees and image tarballs the tests write.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parseBaseRef, splitRepositories } from '../../src/environment/base.ts';
import { RootProvider } from '../../src/environment/root-provider.ts';
import { environmentKind, SelectingProvider } from '../../src/environment/select.ts';
import { expectLayered as expectImageLayers, LOWER, tarOf, UPPER } from '../helpers/oci-image.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { ARCH } from './repo.ts';

const tempDir = useTempDirs();
const noLog = (): void => undefined;

async function dockerSave(path: string, layers: Buffer[]): Promise<void> {
  const names = layers.map((_, i) => `layer${i}/layer.tar`);
  const manifest = JSON.stringify([{ Config: 'config.json', RepoTags: ['test:1'], Layers: names }]);
  await writeFile(
    path,
    await tarOf([
      { name: 'manifest.json', body: manifest },
      { name: 'config.json', body: '{}' },
      ...layers.flatMap((l, i) => [{ name: `layer${i}/`, type: 'directory' as const }, { name: names[i]!, body: l }]),
    ]),
  );
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

async function ociLayout(path: string, layers: Buffer[], tamper = false): Promise<void> {
  const layerDescs = layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${sha256(l)}`, size: l.length }));
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { digest: `sha256:${sha256(config)}`, size: config.length }, layers: layerDescs }));
  const index = JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha256(manifest)}`, size: manifest.length, platform: { architecture: 'amd64', os: 'linux' } }],
  });
  const blobs = [...layers, config, manifest].map((b, i) => ({
    name: `blobs/sha256/${sha256(b)}`,
    body: tamper && i === 0 ? Buffer.concat([b.subarray(0, b.length - 1), Buffer.from([b[b.length - 1]! ^ 1])]) : b,
  }));
  await writeFile(
    path,
    gzipSync(
      await tarOf([
        { name: 'oci-layout', body: '{"imageLayoutVersion":"1.0.0"}' },
        { name: 'index.json', body: index },
        { name: 'blobs/', type: 'directory' },
        { name: 'blobs/sha256/', type: 'directory' },
        ...blobs,
      ]),
    ),
  );
}

async function expectLayered(rootfs: string): Promise<void> {
  await expectImageLayers(rootfs);
  expect(await readFile(join(rootfs, 'etc/passwd'), 'utf8')).toContain('build:x:1000:1000');
}

describe('base references', () => {
  it('parses debian, dir, oci and host references', () => {
    expect(parseBaseRef('debian:bookworm', '/w', '--base')).toEqual({ kind: 'debian', suite: 'bookworm', packages: [], mirror: 'http://deb.debian.org/debian' });
    expect(parseBaseRef('debian:trixie:make,gcc,make@http://mirror.invalid/debian', '/w', '--base')).toEqual({
      kind: 'debian',
      suite: 'trixie',
      packages: ['gcc', 'make'],
      mirror: 'http://mirror.invalid/debian',
    });
    expect(parseBaseRef('dir:rootfs', '/w', '--base')).toEqual({ kind: 'dir', path: '/w/rootfs' });
    expect(parseBaseRef('oci:/images/a.tar', '/w', '--base')).toEqual({ kind: 'oci', path: '/images/a.tar' });
    expect(parseBaseRef('host', '/w', '--base')).toEqual({ kind: 'host' });
    expect(() => parseBaseRef('debian:Bookworm', '/w', '--base')).toThrow(/--base: "debian:Bookworm" is not debian:SUITE/);
    expect(() => parseBaseRef('debian:bookworm:GCC', '/w', '--base')).toThrow(/not Debian package names: GCC/);
    expect(() => parseBaseRef('debian:bookworm@ftp://x', '/w', '--base')).toThrow(/must be an http/);
    expect(() => parseBaseRef('docker:alpine', '/w', '--base')).toThrow(/unknown base "docker:alpine"/);
    expect(() => parseBaseRef('dir:', '/w', '--base')).toThrow(/needs a path/);
  });

  it('separates a base entry from APK repositories; --base wins; two bases are an error', () => {
    expect(splitRepositories(['debian:bookworm:gcc', './packages'], undefined, '/w')).toEqual({
      base: { kind: 'debian', suite: 'bookworm', packages: ['gcc'], mirror: 'http://deb.debian.org/debian' },
      repositories: ['./packages'],
    });
    expect(splitRepositories(['debian:bookworm', 'https://r.invalid/os'], 'dir:/r', '/w').base).toEqual({ kind: 'dir', path: '/r' });
    expect(splitRepositories(['https://r.invalid/os'], undefined, '/w').base).toEqual({ kind: 'none' });
    expect(() => splitRepositories(['debian:bookworm', 'oci:a.tar'], undefined, '/w')).toThrow(/more than one base \(\[0\] debian:bookworm, \[1\] oci:a\.tar\)/);
  });

  it('chooses the host only when nothing declares a root', () => {
    expect(environmentKind({ repositories: [] }).kind).toBe('host');
    expect(environmentKind({ repositories: ['./packages'] }).kind).toBe('root');
    expect(environmentKind({ repositories: ['debian:bookworm'] }).kind).toBe('root');
    expect(environmentKind({ base: 'host', repositories: ['./packages'] }).kind).toBe('host');
    expect(environmentKind({ base: 'debian:bookworm', repositories: [] }).kind).toBe('root');
  });

  it('delegates to the host or a root per spec', async () => {
    const dir = await tempDir();
    const provider = new SelectingProvider({ cacheDir: join(dir, 'cache') });
    const logs: string[] = [];
    const host = await provider.prepare({ repositories: [], keyring: [], packages: ['gcc'], arch: '' }, (l) => logs.push(l));
    expect(host.directory).toBeUndefined();
    expect(host.mounts.some((m) => m.target === '/usr')).toBe(true);
    await mkdir(join(dir, 'rootfs/etc'), { recursive: true });
    const root = await provider.prepare({ repositories: [`dir:${join(dir, 'rootfs')}`], keyring: [], packages: [], arch: ARCH }, (l) => logs.push(l));
    expect(root.mounts).toEqual([{ source: root.directory, target: '/', readonly: true }]);
    expect(logs[0]).toBe('environment: host, not hermetic (no base and no repositories declared)');
    expect(logs).toContain(`environment: hermetic root (base dir:${join(dir, 'rootfs')} in the repositories)`);
  });
});

describe('oci: bases', () => {
  it('applies docker save layers in order with whiteouts and opaque directories', async () => {
    const dir = await tempDir();
    const image = join(dir, 'image.tar');
    await dockerSave(image, [await tarOf(LOWER), gzipSync(await tarOf(UPPER))]);
    const provider = new RootProvider({ cacheDir: join(dir, 'cache') });
    const root = await provider.prepare({ repositories: [], keyring: [], packages: [], arch: ARCH, base: `oci:${image}` }, noLog);
    await expectLayered(root.directory!);
    const again = await provider.prepare({ repositories: [`oci:${image}`], keyring: [], packages: [], arch: ARCH }, noLog);
    expect(again.digest).toBe(root.digest);
    expect(provider.stats.requestHits).toBe(1);
  });

  it('applies an OCI image layout, checking layer digests', async () => {
    const dir = await tempDir();
    const image = join(dir, 'oci.tar.gz');
    const layers = [gzipSync(await tarOf(LOWER)), gzipSync(await tarOf(UPPER))];
    await ociLayout(image, layers);
    const root = await new RootProvider({ cacheDir: join(dir, 'cache') }).prepare({ repositories: [], keyring: [], packages: [], arch: ARCH, base: `oci:${image}` }, noLog);
    await expectLayered(root.directory!);

    const bad = join(dir, 'bad.tar.gz');
    await ociLayout(bad, layers, true);
    const cacheDir = join(dir, 'cache2');
    await expect(new RootProvider({ cacheDir }).prepare({ repositories: [], keyring: [], packages: [], arch: ARCH, base: `oci:${bad}` }, noLog)).rejects.toThrow(
      /layer content does not match its digest sha256:/,
    );
    expect(await readdir(join(cacheDir, 'roots'))).toEqual([]);
    expect(await readdir(join(cacheDir, 'tmp'))).toEqual([]);
  });

  it('refuses a layer that writes outside the root', async () => {
    const dir = await tempDir();
    const image = join(dir, 'evil.tar');
    await dockerSave(image, [await tarOf([{ name: 'etc/', type: 'directory' }, { name: 'etc/../../escape', body: 'x' }])]);
    const cacheDir = join(dir, 'cache');
    await expect(new RootProvider({ cacheDir }).prepare({ repositories: [], keyring: [], packages: [], arch: ARCH, base: `oci:${image}` }, noLog)).rejects.toThrow(
      /oci:.*layer 1: refusing path with "\.\."/,
    );
    expect(await readdir(join(cacheDir, 'roots'))).toEqual([]);
  });

  it('names a tarball that is not an image', async () => {
    const dir = await tempDir();
    const image = join(dir, 'plain.tar');
    await writeFile(image, await tarOf([{ name: 'hello', body: 'hi' }]));
    await expect(new RootProvider({ cacheDir: join(dir, 'cache') }).prepare({ repositories: [], keyring: [], packages: [], arch: ARCH, base: `oci:${image}` }, noLog)).rejects.toThrow(
      /neither an OCI layout \(index\.json\) nor a docker save archive \(manifest\.json\)/,
    );
  });
});

describe('dir: bases', () => {
  it('copies the directory without touching it, and notices when it changes', async () => {
    const dir = await tempDir();
    const source = join(dir, 'rootfs');
    await mkdir(join(source, 'etc'), { recursive: true });
    await writeFile(join(source, 'etc/os-release'), 'ID=test\n');
    const provider = new RootProvider({ cacheDir: join(dir, 'cache') });
    const spec = { repositories: [`dir:${source}`], keyring: [], packages: [], arch: ARCH };
    const first = await provider.prepare(spec, noLog);
    expect(await readFile(join(first.directory!, 'etc/os-release'), 'utf8')).toBe('ID=test\n');
    expect((await readdir(join(source, 'etc'))).sort()).toEqual(['os-release']);
    expect((await provider.prepare(spec, noLog)).digest).toBe(first.digest);
    await writeFile(join(source, 'etc/extra'), 'more\n');
    const second = await provider.prepare(spec, noLog);
    expect(second.digest).not.toBe(first.digest);
    expect(await readFile(join(second.directory!, 'etc/extra'), 'utf8')).toBe('more\n');
    await expect(new RootProvider({ cacheDir: join(dir, 'cache') }).prepare({ ...spec, repositories: [`dir:${join(dir, 'nope')}`] }, noLog)).rejects.toThrow(
      /dir:.*nope: not a directory/,
    );
  });
});
