// A real, signed APK repository for the initramfs tests, made from Debian's busybox-static and dropbear-bin and
// the libraries they need: each .deb is downloaded (Debian's archive is the only network here), unpacked with
// dpkg-deb -x and packaged with builder's own APK writer; dependencies are expressed the way abuild does, as
// `so:` names derived from the ELF files (SONAME provided, DT_NEEDED depended on), so the native resolver has
// real virtual names to follow.
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { type IndexEntry, indexEntryFromApk, writeApkIndex } from '../../src/apk/index.ts';
import { generateSigningKey, loadSigningKey, type SigningKey } from '../../src/apk/keys.ts';
import { emptyPackageInfo, isValidApkVersion } from '../../src/apk/pkginfo.ts';
import { writeApk } from '../../src/apk/writer.ts';
import { readElf } from '../../src/elf/reader.ts';
import { debianClosure } from '../../src/initramfs/debian.ts';

export const ARCH = 'x86_64';
/** Debian names that get another name in the APK repository, so the lookups by APK name are exercised. */
const APK_NAMES: Record<string, string> = { 'dropbear-bin': 'dropbear' };

export interface BuiltPackage {
  entry: IndexEntry;
  /** The .apk file. */
  file: string;
  /** The unpacked tree it was made from. */
  tree: string;
}

export interface TestApkRepository {
  /** The repository: `<dir>/x86_64/APKINDEX.tar.gz` and the packages beside it. */
  dir: string;
  key: SigningKey;
  /** The trusted public key file (`<name>.rsa.pub`). */
  publicKey: string;
  /** By APK package name. */
  packages: Map<string, BuiltPackage>;
}

async function regularFiles(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(path.join(root, rel), { withFileTypes: true })) {
    const p = rel === '' ? d.name : `${rel}/${d.name}`;
    if (d.isDirectory()) out.push(...(await regularFiles(root, p)));
    else if (d.isFile()) out.push(p);
  }
  return out;
}

/** Debian `[epoch:]upstream[-revision]` → an apk version `X.Y.Z-r0` (the leading numeric part of upstream). */
export function apkVersionOf(debianVersion: string): string {
  const upstream = debianVersion.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
  const numeric = /^\d+(\.\d+)*/.exec(upstream)?.[0] ?? '0';
  const version = `${numeric}-r0`;
  if (!isValidApkVersion(version)) throw new Error(`cannot make an apk version of ${debianVersion}`);
  return version;
}

/** `so:` provides and depends of a tree, from its ELF files. */
async function sharedObjects(tree: string): Promise<{ provides: string[]; depend: string[] }> {
  const sonames = new Set<string>();
  const needed = new Set<string>();
  for (const file of await regularFiles(tree)) {
    const elf = await readElf(path.join(tree, file));
    if (elf === null) continue;
    if (elf.soname !== null) sonames.add(elf.soname);
    for (const n of elf.needed) needed.add(n);
  }
  return {
    provides: [...sonames].sort().map((s) => `so:${s}`),
    depend: [...needed].filter((n) => !sonames.has(n)).sort().map((n) => `so:${n}`),
  };
}

/** Packages `tree` as `<repo>/x86_64/<name>-<version>.apk`, signed with `key`. */
export async function packageTree(
  repoDir: string,
  key: SigningKey,
  tree: string,
  info: { pkgname: string; pkgver: string; depend?: string[]; provides?: string[] },
): Promise<BuiltPackage> {
  const derived = await sharedObjects(tree);
  const file = path.join(repoDir, ARCH, `${info.pkgname}-${info.pkgver}.apk`);
  await mkdir(path.dirname(file), { recursive: true });
  const written = await writeApk({
    sourceDir: tree,
    info: {
      ...emptyPackageInfo(info.pkgname, info.pkgver, ARCH),
      license: ['test'],
      depend: info.depend ?? derived.depend,
      provides: info.provides ?? derived.provides,
    },
    outputPath: file,
    signingKey: key,
    sourceDateEpoch: 0,
  });
  return { entry: indexEntryFromApk(written), file, tree };
}

export async function writeIndex(repoDir: string, key: SigningKey, entries: IndexEntry[]): Promise<void> {
  await mkdir(path.join(repoDir, ARCH), { recursive: true });
  await writeApkIndex({ path: path.join(repoDir, ARCH, 'APKINDEX.tar.gz'), entries, signingKey: key });
}

/**
 * Downloads busybox-static, dropbear-bin and their dependency closure from Debian and makes a signed APK
 * repository of them under `work`.
 */
export async function debianMadeApkRepository(work: string): Promise<TestApkRepository> {
  const debs = path.join(work, 'debs');
  const trees = path.join(work, 'trees');
  const dir = path.join(work, 'repo');
  await mkdir(debs, { recursive: true });
  await mkdir(trees, { recursive: true });
  const keyPath = path.join(work, 'initramfs-test.rsa');
  const generated = await generateSigningKey(keyPath, { bits: 2048 });
  const key = await loadSigningKey(keyPath);

  const closure = await debianClosure(['busybox-static', 'dropbear-bin']);
  await execa('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', ...closure], { cwd: debs, stdin: 'ignore' });
  const packages = new Map<string, BuiltPackage>();
  for (const deb of (await readdir(debs)).filter((f) => f.endsWith('.deb')).sort()) {
    const fields = await execa('dpkg-deb', ['-f', path.join(debs, deb), 'Package', 'Version']);
    const name = /^Package: (.+)$/m.exec(fields.stdout)?.[1]?.trim();
    const version = /^Version: (.+)$/m.exec(fields.stdout)?.[1]?.trim();
    if (!name || !version) throw new Error(`${deb}: no Package/Version`);
    const tree = path.join(trees, name);
    await mkdir(tree);
    await execa('dpkg-deb', ['-x', path.join(debs, deb), tree]);
    const pkgname = APK_NAMES[name] ?? name;
    packages.set(pkgname, await packageTree(dir, key, tree, { pkgname, pkgver: apkVersionOf(version) }));
  }
  await writeIndex(dir, key, [...packages.values()].map((p) => p.entry));
  return { dir, key, publicKey: generated.publicPath, packages };
}
