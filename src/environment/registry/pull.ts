// Pulling an image from a registry: the manifest for the target arch (through an image index when the tag
// names one), then each layer into a blob cache named by digest. A blob is hashed while it streams to a temp
// file and renamed into the cache only when its digest matches; a cached blob whose content still matches is
// reused without a request. Manifests fetched by digest are checked against it too.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { tempPathFor, removeQuietly } from '../../apk/atomic.ts';
import { BuilderError, errorMessage, PackageFormatError } from '../../errors.ts';
import { TransferProgress } from '../../text/transfer-progress.ts';
import { fileSha256 } from '../cache.ts';
import { choosePlatform, INDEX_TYPES, isObject, type Layer } from '../oci.ts';
import { RegistryClient, RegistryError, type RegistryClientOptions } from './client.ts';
import { type ImageReference, manifestReference } from './reference.ts';

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** A layer of a pulled image: the cached blob and its digest. */
export interface PulledLayer extends Layer {
  digest: string;
  size: number;
}

export interface PulledImage {
  /** Digest of the platform manifest: it names the image's content. */
  manifestDigest: string;
  layers: PulledLayer[];
}

interface Descriptor {
  digest: string;
  size: number;
  mediaType: string;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function descriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v) || typeof v.digest !== 'string' || !DIGEST.test(v.digest)) {
    throw new PackageFormatError(`${what}: malformed descriptor (only sha256 digests are supported)`);
  }
  const size = typeof v.size === 'number' && Number.isSafeInteger(v.size) && v.size >= 0 ? v.size : -1;
  return { digest: v.digest, size, mediaType: typeof v.mediaType === 'string' ? v.mediaType : '' };
}

/** One manifest or index, its digest checked when it was asked for by digest. */
async function fetchManifest(client: RegistryClient, id: string): Promise<{ body: Record<string, unknown>; digest: string; mediaType: string }> {
  const what = `${client.ref.text}: manifest ${id}`;
  const response = await client.get('manifests', id, MANIFEST_TYPES);
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > MAX_MANIFEST_BYTES) throw new PackageFormatError(`${what}: ${declared} bytes is too large for a manifest`);
  const raw = Buffer.from(await response.arrayBuffer());
  const digest = sha256(raw);
  if (id.startsWith('sha256:') && digest !== id) {
    throw new PackageFormatError(`${what}: digest mismatch: the registry sent content with digest ${digest}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new PackageFormatError(`${what}: not JSON: ${errorMessage(err)}`, { cause: err });
  }
  if (!isObject(body)) throw new PackageFormatError(`${what}: not a manifest`);
  const mediaType = typeof body.mediaType === 'string' ? body.mediaType : (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
  return { body, digest, mediaType };
}

/** The platform manifest for `arch`, following at most two levels of image index. */
async function resolveManifest(client: RegistryClient, arch: string): Promise<{ body: Record<string, unknown>; digest: string }> {
  let current = await fetchManifest(client, manifestReference(client.ref));
  for (let depth = 0; depth < 3; depth++) {
    const isIndex = INDEX_TYPES.has(current.mediaType) || (Array.isArray(current.body.manifests) && !Array.isArray(current.body.layers));
    if (!isIndex) return current;
    const manifests = Array.isArray(current.body.manifests) ? current.body.manifests.filter(isObject) : [];
    const chosen = choosePlatform(manifests, arch, client.ref.text);
    current = await fetchManifest(client, descriptor(chosen, `${client.ref.text}: image index`).digest);
  }
  throw new PackageFormatError(`${client.ref.text}: image indexes nested too deeply`);
}

/** Streams one blob into `blobDir/sha256/HEX`, verifying size and digest before it gets its name. */
async function fetchBlob(client: RegistryClient, layer: Descriptor, file: string, progress: TransferProgress): Promise<void> {
  const what = `${client.ref.text}: layer ${layer.digest}`;
  const response = await client.get('blobs', layer.digest);
  if (!response.body) throw new RegistryError(`${what}: the registry sent no body`);
  const temp = tempPathFor(file, 'part');
  const hash = createHash('sha256');
  let received = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      received += chunk.length;
      progress.bytes(chunk.length);
      done(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), counter, createWriteStream(temp, { flags: 'wx', mode: 0o644 }));
    const digest = `sha256:${hash.digest('hex')}`;
    if (digest !== layer.digest) {
      throw new PackageFormatError(`${what}: digest mismatch: received ${received} bytes with digest ${digest}`);
    }
    if (layer.size >= 0 && received !== layer.size) {
      throw new PackageFormatError(`${what}: the manifest says ${layer.size} bytes, the registry sent ${received}`);
    }
    await rename(temp, file);
  } catch (err) {
    await removeQuietly(temp);
    if (err instanceof BuilderError) throw err;
    throw new RegistryError(`${what}: download failed: ${errorMessage(err)}`, undefined, { cause: err });
  }
}

export interface PullOptions extends RegistryClientOptions {
  /** Directory of the blob cache; blobs live under `sha256/HEX`. */
  blobDir: string;
  log: (line: string) => void;
}

/** Resolves the tag or digest to the platform manifest; no layer is downloaded. */
export async function resolveImage(ref: ImageReference, arch: string, options: RegistryClientOptions = {}): Promise<{ manifestDigest: string }> {
  const { digest } = await resolveManifest(new RegistryClient(ref, options), arch);
  return { manifestDigest: digest };
}

/** Pulls the image's layers into the blob cache and returns them bottom first. */
export async function pullImage(ref: ImageReference, arch: string, options: PullOptions): Promise<PulledImage> {
  const client = new RegistryClient(ref, options);
  const manifest = await resolveManifest(client, arch);
  if (!Array.isArray(manifest.body.layers)) throw new PackageFormatError(`${ref.text}: manifest ${manifest.digest} lists no layers`);
  const descriptors = manifest.body.layers.map((l: unknown, i) => descriptor(l, `${ref.text}: layer ${i + 1}`));
  const dir = join(options.blobDir, 'sha256');
  await mkdir(dir, { recursive: true });
  const progress = new TransferProgress(
    `environment: pulling ${ref.text}`,
    { items: descriptors.length, bytes: descriptors.reduce((n, d) => n + Math.max(d.size, 0), 0) },
    options.log,
  );
  const layers: PulledLayer[] = [];
  for (const d of descriptors) {
    const file = join(dir, d.digest.slice('sha256:'.length));
    const cached = await stat(file).catch(() => undefined);
    // A cached blob is hashed again (a damaged cache must not fail every later build); one that does not
    // match is fetched anew over it.
    if (cached?.isFile() && (d.size < 0 || cached.size === d.size) && `sha256:${await fileSha256(file)}` === d.digest) {
      progress.itemDone(cached.size);
    } else {
      if (cached) options.log(`environment: cached layer ${d.digest.slice(0, 19)} is damaged; fetching it again`);
      await fetchBlob(client, d, file, progress);
      progress.itemDone();
    }
    layers.push({ file, digest: d.digest, size: d.size });
  }
  return { manifestDigest: manifest.digest, layers };
}
