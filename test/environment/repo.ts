// Test repositories made with our own APK writer and index writer, plus a raw package builder for packages
// our writer refuses to make (hostile entry names), so the installer's refusals can be tested.
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipMember } from '../../src/apk/gzip.ts';
import { type IndexEntry, writeApkIndex } from '../../src/apk/index.ts';
import { generateSigningKey, loadSigningKey, type SigningKey } from '../../src/apk/keys.ts';
import { emptyPackageInfo, type PackageInfo, renderPkginfo } from '../../src/apk/pkginfo.ts';
import { buildSignatureStream } from '../../src/apk/signature.ts';
import { encodeTarEntry, TAR_END_OF_ARCHIVE, type TarHeader } from '../../src/apk/tar.ts';
import { writeApk } from '../../src/apk/writer.ts';

export const ARCH = 'x86_64';

export interface TestKey {
  key: SigningKey;
  /** Public key file (its basename is the key name). */
  publicPath: string;
}

export async function makeKey(dir: string, name = 'test.rsa'): Promise<TestKey> {
  await mkdir(dir, { recursive: true });
  const generated = await generateSigningKey(join(dir, name), { bits: 2048 });
  return { key: await loadSigningKey(generated.privatePath), publicPath: generated.publicPath };
}

export interface PackageSpec {
  name: string;
  version: string;
  depends?: string[];
  provides?: string[];
  providerPriority?: number;
  /** path → content; a value starting with `->` makes a symlink; paths ending in `/` are directories. */
  files?: Record<string, string>;
  /** Mode per path. */
  modes?: Record<string, number>;
  scriptlets?: Record<string, string>;
}

/** Builds one package with the real writer into `<repo>/<arch>/`. */
export async function buildPackage(repo: string, spec: PackageSpec, key: SigningKey | undefined): Promise<IndexEntry> {
  const archDir = join(repo, ARCH);
  await mkdir(archDir, { recursive: true });
  const tree = await mkdtemp(join(tmpdir(), 'builder-pkgtree-'));
  try {
    for (const [path, content] of Object.entries(spec.files ?? { [`usr/share/${spec.name}/version`]: `${spec.version}\n` })) {
      const target = join(tree, path);
      if (path.endsWith('/')) {
        await mkdir(target, { recursive: true });
        continue;
      }
      await mkdir(dirname(target), { recursive: true });
      if (content.startsWith('->')) await symlink(content.slice(2), target);
      else await writeFile(target, content);
      const mode = spec.modes?.[path];
      if (mode !== undefined) await chmod(target, mode);
    }
    const result = await writeApk({
      sourceDir: tree,
      outputPath: join(archDir, `${spec.name}-${spec.version}.apk`),
      signingKey: key,
      sourceDateEpoch: 1700000000,
      info: {
        ...emptyPackageInfo(spec.name, spec.version, ARCH),
        depend: spec.depends ?? [],
        provides: spec.provides ?? [],
        providerPriority: spec.providerPriority,
        license: ['MIT'],
      },
      controlFiles: Object.entries(spec.scriptlets ?? {}).map(([name, content]) => ({ name: `.${name}`, content, mode: 0o755 })),
    });
    return { ...result.info, checksum: result.checksum, fileSize: result.fileSize };
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}

export async function writeIndex(repo: string, entries: IndexEntry[], key: SigningKey | undefined): Promise<string> {
  const path = join(repo, ARCH, 'APKINDEX.tar.gz');
  await mkdir(dirname(path), { recursive: true });
  await writeApkIndex({ path, entries, signingKey: key });
  return path;
}

/** A repository of several packages, indexed and signed. */
export async function buildRepo(repo: string, specs: PackageSpec[], key: SigningKey | undefined): Promise<IndexEntry[]> {
  const entries: IndexEntry[] = [];
  for (const s of specs) entries.push(await buildPackage(repo, s, key));
  await writeIndex(repo, entries, key);
  return entries;
}

export interface RawEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  content?: string;
  linkname?: string;
  mode?: number;
}

/**
 * A package assembled stream by stream from raw tar entries (no path checks), signed like a real one, so the
 * installer can be fed names our writer would never produce.
 */
export async function buildRawPackage(repo: string, name: string, version: string, entries: RawEntry[], key: SigningKey): Promise<IndexEntry> {
  const archDir = join(repo, ARCH);
  await mkdir(archDir, { recursive: true });
  const owner = { uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: 1700000000 };
  const dataTar = Buffer.concat([
    ...entries.map((e) => {
      const content = Buffer.from(e.content ?? '');
      const header: TarHeader = {
        name: e.name,
        type: e.type,
        mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
        size: e.type === 'file' ? content.length : 0,
        ...owner,
      };
      if (e.linkname !== undefined) header.linkname = e.linkname;
      return encodeTarEntry(header, e.type === 'file' ? content : Buffer.alloc(0));
    }),
    TAR_END_OF_ARCHIVE,
  ]);
  const data = gzipMember(dataTar);
  const info: PackageInfo = {
    ...emptyPackageInfo(name, version, ARCH),
    size: Math.max(1, dataTar.length),
    datahash: createHash('sha256').update(data).digest('hex'),
  };
  const pkginfo = Buffer.from(renderPkginfo(info));
  const control = gzipMember(encodeTarEntry({ name: '.PKGINFO', type: 'file', mode: 0o644, size: pkginfo.length, ...owner }, pkginfo));
  const signature = buildSignatureStream(key, control, owner.mtime);
  const file = Buffer.concat([signature, control, data]);
  await writeFile(join(archDir, `${name}-${version}.apk`), file);
  return { ...info, checksum: `Q1${createHash('sha1').update(control).digest('base64')}`, fileSize: file.length };
}
