// `oci:PATH` bases: a `docker save` tarball or an OCI image layout packed as a tar (optionally gzipped).
// The outer tar is unpacked path-safely into a scratch dir; the image's layers are then applied to the root
// in order, whiteouts (`.wh.NAME`, `.wh..wh..opq`) deleting what lower layers put there.
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import tar from 'tar-stream';
import { extractTar, resolveInside, safeEntryName } from '../archive/safe-extract.ts';
import { BuilderError, errorMessage, PackageFormatError } from '../errors.ts';
import { fileSha256, removeTree } from './cache.ts';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const OPAQUE = '.wh..wh..opq';
const WHITEOUT_PREFIX = '.wh.';

export const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

const OCI_ARCH: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64', armv7: 'arm', x86: '386', ppc64le: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

export interface Layer {
  file: string;
  /** `sha256:<hex>` when the layout names it (OCI); docker save layers are named by path only. */
  digest?: string;
}

async function sniff(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * A file's content as a tar stream, decompressing gzip or zstd by magic number. `done` settles when the file
 * has been read through (it is marked handled: a consumer that fails first reports its own error).
 */
async function tarStreamOf(path: string): Promise<{ stream: Readable; done: Promise<void> }> {
  const magic = await sniff(path);
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  const decompress = magic.subarray(0, 2).equals(GZIP_MAGIC)
    ? createGunzip()
    : magic.equals(ZSTD_MAGIC)
      ? createZstdDecompress()
      : new PassThrough();
  const done = pipeline(createReadStream(path, { highWaterMark: 1024 * 1024 }), decompress, out);
  done.catch(() => undefined);
  return { stream: out, done };
}

async function readJson(path: string, what: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as unknown;
  } catch (err) {
    throw new PackageFormatError(`${what}: ${errorMessage(err)}`, { cause: err });
  }
}

function blobPath(layout: string, digest: unknown, image: string): string {
  if (typeof digest !== 'string' || !/^[a-z0-9]+:[a-f0-9]{32,}$/.test(digest)) {
    throw new PackageFormatError(`${image}: bad blob digest ${JSON.stringify(digest)}`);
  }
  const [alg, hex] = digest.split(':') as [string, string];
  return join(layout, 'blobs', alg, hex);
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The entry of an image index for `arch` on Linux (a lone entry without a platform is taken as is). An arm
 * variant is not asked for: the first Linux entry of the architecture wins, as docker pulls it.
 */
export function choosePlatform(manifests: Record<string, unknown>[], arch: string, image: string): Record<string, unknown> {
  const wanted = OCI_ARCH[arch] ?? arch;
  const chosen =
    manifests.find((m) => isObject(m.platform) && m.platform.architecture === wanted && (m.platform.os ?? 'linux') === 'linux') ??
    (manifests.length === 1 && !isObject(manifests[0]?.platform) ? manifests[0] : undefined);
  if (chosen) return chosen;
  const offered = manifests.map((m) => (isObject(m.platform) ? `${String(m.platform.os)}/${String(m.platform.architecture)}` : '?'));
  throw new BuilderError(`${image}: no image for linux/${wanted} (${arch}); the index offers ${offered.join(', ') || 'nothing'}`);
}

/** The layers of the image unpacked at `layout`, bottom first. */
export async function imageLayers(layout: string, image: string, arch: string): Promise<Layer[]> {
  const names = new Set(await readdir(layout));
  if (names.has('index.json')) {
    let node = await readJson(join(layout, 'index.json'), `${image}: index.json`);
    for (let depth = 0; depth < 4; depth++) {
      if (!isObject(node)) throw new PackageFormatError(`${image}: malformed image index`);
      if (Array.isArray(node.layers)) {
        return node.layers.map((l: unknown) => {
          if (!isObject(l)) throw new PackageFormatError(`${image}: malformed layer descriptor`);
          return { file: blobPath(layout, l.digest, image), digest: String(l.digest) };
        });
      }
      const manifests = Array.isArray(node.manifests) ? node.manifests.filter(isObject) : [];
      if (manifests.length === 0) throw new PackageFormatError(`${image}: the image index lists no manifests`);
      const chosen = choosePlatform(manifests, arch, image);
      const type = typeof chosen.mediaType === 'string' ? chosen.mediaType : '';
      node = await readJson(blobPath(layout, chosen.digest, image), `${image}: ${INDEX_TYPES.has(type) ? 'index' : 'manifest'} ${String(chosen.digest)}`);
    }
    throw new PackageFormatError(`${image}: image indexes nested too deeply`);
  }
  if (names.has('manifest.json')) {
    const manifest = await readJson(join(layout, 'manifest.json'), `${image}: manifest.json`);
    const first = Array.isArray(manifest) ? manifest[0] : undefined;
    if (!isObject(first) || !Array.isArray(first.Layers)) throw new PackageFormatError(`${image}: manifest.json lists no layers`);
    return first.Layers.map((l: unknown) => {
      if (typeof l !== 'string') throw new PackageFormatError(`${image}: bad layer name ${JSON.stringify(l)}`);
      return { file: join(layout, safeEntryName(l, `${image}: manifest.json`)) };
    });
  }
  throw new PackageFormatError(`${image}: neither an OCI layout (index.json) nor a docker save archive (manifest.json)`);
}

/** Applies one layer's whiteouts (they delete from lower layers), then its entries. */
export async function applyLayer(root: string, layer: Layer, where: string, preserveOwner: boolean): Promise<void> {
  if (layer.digest?.startsWith('sha256:') && `sha256:${await fileSha256(layer.file)}` !== layer.digest) {
    throw new PackageFormatError(`${where}: layer content does not match its digest ${layer.digest}`);
  }
  try {
    await applyVerifiedLayer(root, layer, where, preserveOwner);
  } catch (err) {
    if (err instanceof BuilderError) throw err;
    throw new PackageFormatError(`${where}: corrupt layer: ${errorMessage(err)}`, { cause: err });
  }
}

async function applyVerifiedLayer(root: string, layer: Layer, where: string, preserveOwner: boolean): Promise<void> {
  const whiteouts: { dir: string; name: string | undefined }[] = [];
  {
    const { stream, done } = await tarStreamOf(layer.file);
    const extract = tar.extract();
    const feeding = pipeline(stream, extract);
    feeding.catch(() => undefined);
    try {
      for await (const entry of extract) {
        const name = safeEntryName(entry.header.name, where);
        const base = posix.basename(name);
        if (base === OPAQUE) whiteouts.push({ dir: posix.dirname(name), name: undefined });
        else if (base.startsWith(WHITEOUT_PREFIX)) whiteouts.push({ dir: posix.dirname(name), name: base.slice(WHITEOUT_PREFIX.length) });
        entry.resume();
      }
    } catch (err) {
      stream.destroy();
      throw err;
    }
    await feeding;
    await done;
  }
  for (const w of whiteouts) {
    const dir = w.dir === '.' ? root : await resolveInside(root, w.dir, `${where}: whiteout in ${w.dir}`, true).catch(() => undefined);
    if (dir === undefined) continue;
    if (w.name === undefined) {
      const children = await readdir(dir).catch(() => [] as string[]);
      await Promise.all(children.map((c) => rm(join(dir, c), { recursive: true, force: true })));
    } else if (w.name !== '' && w.name !== '.' && w.name !== '..') {
      await rm(join(dir, w.name), { recursive: true, force: true });
    }
  }
  const { stream, done } = await tarStreamOf(layer.file);
  await extractTar(stream, {
    dest: root,
    where,
    preserveOwner,
    preserveMtime: true,
    filter: (name) => !posix.basename(name).startsWith(WHITEOUT_PREFIX),
  });
  await done;
}

/** Makes a root in the empty directory `target` from the image tarball at `image`. */
export async function createOciRoot(image: string, arch: string, target: string, scratchParent: string, log: (line: string) => void): Promise<void> {
  const scratch = await mkdtemp(join(scratchParent, 'oci-'));
  try {
    try {
      const { stream, done } = await tarStreamOf(image);
      await extractTar(stream, { dest: scratch, where: `oci:${image}` });
      await done;
    } catch (err) {
      if (err instanceof BuilderError) throw err;
      throw new BuilderError(`oci:${image}: cannot read the image tarball: ${errorMessage(err)}`, { cause: err });
    }
    await applyLayers(target, await imageLayers(scratch, `oci:${image}`, arch), `oci:${image}`, log);
  } finally {
    await removeTree(scratch);
  }
}

/** Applies an image's layers, bottom first, to the empty directory `target`. */
export async function applyLayers(target: string, layers: readonly Layer[], image: string, log: (line: string) => void): Promise<void> {
  const preserveOwner = process.getuid?.() === 0;
  for (const [i, layer] of layers.entries()) {
    log(`environment: applying layer ${i + 1}/${layers.length} of ${image}`);
    await applyLayer(target, layer, `${image}: layer ${i + 1}`, preserveOwner);
  }
}
