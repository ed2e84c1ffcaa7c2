// Image material for tests: tar layers from item lists, a two-layer image with whiteouts and an opaque
// directory, and OCI image layouts (a platform index of one manifest per arch) written to a directory.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { expect } from 'vitest';

export interface TarItem {
  name: string;
  type?: 'file' | 'directory' | 'symlink';
  body?: string | Buffer;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

export async function tarOf(items: TarItem[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const i of items) {
    const body = Buffer.from(i.body ?? '');
    const type = i.type ?? 'file';
    const header: Partial<tar.Header> & { name: string } = { name: i.name, mtime: new Date(1700000000000), type, mode: i.mode ?? (type === 'directory' ? 0o755 : 0o644), size: type === 'file' ? body.length : 0, uid: i.uid ?? 0, gid: i.gid ?? 0 };
    if (i.linkname !== undefined) header.linkname = i.linkname;
    if (type === 'file') pack.entry(header as tar.Header, body);
    else pack.entry(header as tar.Header);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Writes an OCI image layout at `dir`: an index with one manifest per platform, each with the given layers
 * (plain tars, gzipped here). Returns the platform manifests' digests.
 */
export async function writeOciLayout(dir: string, images: { arch: string; layers: TarItem[][] }[]): Promise<Record<string, string>> {
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  const put = async (b: Buffer): Promise<string> => {
    const d = sha(b);
    await writeFile(join(dir, 'blobs/sha256', d.slice(7)), b);
    return d;
  };
  const digests: Record<string, string> = {};
  const manifests = [];
  for (const image of images) {
    const raw = await Promise.all(image.layers.map((l) => tarOf(l)));
    const gz = raw.map((r) => gzipSync(r));
    const layers = await Promise.all(gz.map(async (g) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await put(g), size: g.length })));
    const config = Buffer.from(JSON.stringify({ architecture: image.arch, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: raw.map(sha) } }));
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await put(config), size: config.length },
      layers,
    }));
    digests[image.arch] = await put(manifest);
    manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digests[image.arch], size: manifest.length, platform: { architecture: image.arch, os: 'linux' } });
  }
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  // skopeo takes a layout's index.json to list images, so the platform list is a nested index blob.
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
  const top = { mediaType: 'application/vnd.oci.image.index.v1+json', digest: await put(index), size: index.length };
  digests.index = top.digest;
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [top] }));
  return digests;
}


/** The lower layer: files, a directory to be made opaque, an executable and a symlink. */
export const LOWER: TarItem[] = [
  { name: 'etc/', type: 'directory' },
  { name: 'etc/a', body: 'lower a\n' },
  { name: 'etc/b', body: 'lower b\n' },
  { name: 'opt/', type: 'directory' },
  { name: 'opt/x/', type: 'directory' },
  { name: 'opt/x/old', body: 'old\n' },
  { name: 'bin/', type: 'directory' },
  { name: 'bin/tool', body: '#!/bin/sh\n', mode: 0o755 },
  { name: 'bin/alias', type: 'symlink', linkname: 'tool' },
];
/** The upper layer: deletes etc/a, empties opt/x before adding to it, adds an owned file. */
export const UPPER: TarItem[] = [
  { name: 'etc/', type: 'directory' },
  { name: 'etc/.wh.a', body: '' },
  { name: 'etc/c', body: 'upper c\n', uid: 1234, gid: 5678, mode: 0o640 },
  { name: 'opt/x/', type: 'directory' },
  { name: 'opt/x/new', body: 'new\n' },
  { name: 'opt/x/.wh..wh..opq', body: '' },
];

/** Checks a root made from LOWER under UPPER: whiteouts and the opaque directory applied, modes and owners kept. */
export async function expectLayered(rootfs: string): Promise<void> {
  expect(await readFile(join(rootfs, 'etc/b'), 'utf8')).toBe('lower b\n');
  expect(await readFile(join(rootfs, 'etc/c'), 'utf8')).toBe('upper c\n');
  await expect(stat(join(rootfs, 'etc/a'))).rejects.toThrow();
  expect((await readdir(join(rootfs, 'opt/x'))).sort()).toEqual(['new']);
  expect((await stat(join(rootfs, 'bin/tool'))).mode & 0o777).toBe(0o755);
  expect(await readFile(join(rootfs, 'bin/alias'), 'utf8')).toBe('#!/bin/sh\n');
  const c = await stat(join(rootfs, 'etc/c'));
  expect(c.mode & 0o777).toBe(0o640);
  if (process.getuid?.() === 0) expect([c.uid, c.gid]).toEqual([1234, 5678]);
}
