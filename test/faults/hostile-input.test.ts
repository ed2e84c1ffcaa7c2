// Hostile input, one case each: archives whose entries try to leave the root they are unpacked into, a
// package tree whose links point at host files, repository packages that write through an earlier package's
// link, and an output directory on a full filesystem.
import { execa } from 'execa';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { listApkData } from '../../src/apk/reader.ts';
import { emptyPackageInfo } from '../../src/apk/pkginfo.ts';
import { verifyApk } from '../../src/apk/verify.ts';
import { writeApk } from '../../src/apk/writer.ts';
import { extractTar } from '../../src/archive/safe-extract.ts';
import { installPackages } from '../../src/environment/apk/install.ts';
import { PackageFormatError } from '../../src/errors.ts';
import { type TarEntry, tarOf } from '../helpers/tar.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { ARCH, buildPackage, makeKey } from '../environment/repo.ts';

const tempDir = useTempDirs();

type Entry = TarEntry;

/** A host directory outside the root every hostile entry aims at; it must stay empty. */
async function canary(): Promise<string> {
  const dir = await tempDir();
  await mkdir(join(dir, 'target'));
  return join(dir, 'target');
}

async function extractInto(entries: Entry[]): Promise<{ root: string; error: unknown }> {
  const root = await tempDir();
  const error = await extractTar(tarOf(entries), { dest: root, where: 'hostile.tar' }).then(() => undefined, (e: unknown) => e);
  return { root, error };
}

describe('hostile archives (sources coming back, packages, image layers)', () => {
  it('refuses `..` names', async () => {
    const target = await canary();
    const { error } = await extractInto([{ name: `../../../../../../..${target}/x`, body: 'pwned' }]);
    expect(error).toBeInstanceOf(PackageFormatError);
    expect(String(error)).toContain('refusing path with ".."');
    expect(await readdir(target)).toEqual([]);
  });

  it('refuses absolute names', async () => {
    const target = await canary();
    const { error } = await extractInto([{ name: `${target}/x`, body: 'pwned' }]);
    expect(String(error)).toContain('refusing absolute path');
    expect(await readdir(target)).toEqual([]);
  });

  it('keeps a file written through an absolute symlink inside the root', async () => {
    const target = await canary();
    const { root, error } = await extractInto([
      { name: 'link', type: 'symlink', linkname: target },
      { name: 'link/x', body: 'contained' },
    ]);
    expect(error).toBeUndefined();
    expect(await readdir(target)).toEqual([]);
    expect(await readFile(join(root, target, 'x'), 'utf8')).toBe('contained');
  });

  it('refuses a file written through a relative symlink that climbs out', async () => {
    const target = await canary();
    const { error } = await extractInto([
      { name: 'link', type: 'symlink', linkname: `../../../../../../../..${target}` },
      { name: 'link/x', body: 'pwned' },
    ]);
    expect(String(error)).toContain('leads outside the root');
    expect(await readdir(target)).toEqual([]);
  });

  it('refuses device nodes and fifos', async () => {
    for (const type of ['character-device', 'block-device', 'fifo'] as const) {
      const { root, error } = await extractInto([{ name: 'dev-node', type, devmajor: 1, devminor: 3 }]);
      expect(String(error)).toContain(`unsupported entry type ${type}`);
      expect(await readdir(root)).toEqual([]);
    }
  });

  it('refuses hard links to files outside the root', async () => {
    const target = await canary();
    await writeFile(join(target, 'secret'), 'host secret');
    for (const linkname of [`../../../../../../..${target}/secret`, `${target}/secret`]) {
      const { root, error } = await extractInto([{ name: 'h', type: 'link', linkname }]);
      expect(error).toBeInstanceOf(PackageFormatError);
      expect(await readdir(root)).toEqual([]);
    }
    // Through a symlink: the link's target is resolved inside the root, where there is no such file.
    const { root, error } = await extractInto([
      { name: 'l', type: 'symlink', linkname: target },
      { name: 'h', type: 'link', linkname: 'l/secret' },
    ]);
    expect(error).toBeDefined();
    expect(await readdir(root)).toEqual(['l']);
    expect((await stat(join(target, 'secret'))).nlink).toBe(1);
  });
});

describe('hostile repository packages', () => {
  it('a package cannot write through another package\'s link onto the host', async () => {
    const target = await canary();
    const dir = await tempDir();
    const key = await makeKey(join(dir, 'keys'));
    const repo = join(dir, 'repo');
    const abs = await buildPackage(repo, { name: 'a-link', version: '1-r0', files: { 'usr/': '', 'usr/evil': `->${target}` } }, key.key);
    const through = await buildPackage(repo, { name: 'b-through', version: '1-r0', files: { 'usr/': '', 'usr/evil/': '', 'usr/evil/pwned': 'x' } }, key.key);
    const root = await tempDir();
    const pkg = (entry: typeof abs) => ({ entry, file: join(repo, ARCH, `${entry.pkgname}-${entry.pkgver}.apk`), repository: repo });
    await installPackages({ root, packages: [pkg(abs), pkg(through)], keyring: new Map(), ignoreSignatures: true, runScriptlets: false, log: () => undefined });
    expect(await readdir(target)).toEqual([]);
    // The link led nowhere inside the root, so the directory entry replaced it with a real directory.
    expect(await readFile(join(root, 'usr/evil/pwned'), 'utf8')).toBe('x');

    const climbing = await buildPackage(repo, { name: 'c-climb', version: '1-r0', files: { 'usr/': '', 'usr/up': `->../../../../../../../..${target}` } }, key.key);
    const via = await buildPackage(repo, { name: 'd-via', version: '1-r0', files: { 'usr/': '', 'usr/up/': '', 'usr/up/pwned': 'x' } }, key.key);
    const root2 = await tempDir();
    await expect(
      installPackages({ root: root2, packages: [pkg(climbing), pkg(via)], keyring: new Map(), ignoreSignatures: true, runScriptlets: false, log: () => undefined }),
    ).rejects.toThrow(/leads outside the root/);
    expect(await readdir(target)).toEqual([]);
  });
});

describe('a melange-out tree with links to host files', () => {
  it('packages the links as links, never their targets', async () => {
    const tree = await tempDir();
    await mkdir(join(tree, 'etc'));
    await symlink('/etc/passwd', join(tree, 'etc/leak'));
    await symlink('../../../../../../../etc/hostname', join(tree, 'climb'));
    const out = join(await tempDir(), 'p-1-r0.apk');
    await writeApk({ sourceDir: tree, outputPath: out, sourceDateEpoch: 0, info: { ...emptyPackageInfo('p', '1-r0', ARCH), license: ['MIT'] } });
    const entries = await listApkData(out);
    expect(entries.map((e) => [e.name, e.type, e.size, e.linkname])).toEqual([
      ['climb', 'symlink', 0, '../../../../../../../etc/hostname'],
      ['etc', 'directory', 0, undefined],
      ['etc/leak', 'symlink', 0, '/etc/passwd'],
    ]);
  });
});

describe('an out dir on a full filesystem', () => {
  it('fails with a clear error and leaves nothing half-written', async () => {
    if (process.getuid?.() !== 0) return;
    const mnt = await mkdtemp(join(tmpdir(), 'builder-fullfs-'));
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
    onTestFinished(async () => {
      await execa('umount', [mnt]);
      await rm(mnt, { recursive: true, force: true });
    });
    const tree = await tempDir();
    // Random bytes do not compress: the package cannot fit in 64 KiB.
    await writeFile(join(tree, 'blob'), (await import('node:crypto')).randomBytes(256 * 1024));
    const out = join(mnt, 'big-1-r0.apk');
    const error = await writeApk({ sourceDir: tree, outputPath: out, sourceDateEpoch: 0, info: { ...emptyPackageInfo('big', '1-r0', ARCH), license: ['MIT'] } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String(error)).toMatch(/ENOSPC|no space/i);
    expect(await readdir(mnt)).toEqual([]);
  });
});

describe('builder verify on valid-but-unusual packages', () => {
  it('accepts a v2.0 package signed over control + data without datahash, and refuses it tampered', async () => {
    const { gzipMember } = await import('../../src/apk/gzip.ts');
    const { encodeTarEntry, TAR_END_OF_ARCHIVE } = await import('../../src/apk/tar.ts');
    const { buildSignatureStream } = await import('../../src/apk/signature.ts');
    const { createPublicKey } = await import('node:crypto');
    const dir = await tempDir();
    const key = await makeKey(join(dir, 'keys'));
    const keyring = new Map([['test.rsa.pub', createPublicKey(await readFile(key.publicPath))]]);
    const header = (name: string, type: 'file' | 'directory', size: number) => ({ name, type, mode: type === 'file' ? 0o644 : 0o755, size, mtime: 0, uid: 0, gid: 0, uname: 'root', gname: 'root' });
    const pkginfo = Buffer.from(`pkgname = old\npkgver = 1-r0\narch = ${ARCH}\nsize = 1\nlicense = MIT\n`);
    const control = gzipMember(encodeTarEntry(header('.PKGINFO', 'file', pkginfo.length), pkginfo));
    const data = gzipMember(Buffer.concat([encodeTarEntry(header('usr', 'directory', 0), Buffer.alloc(0)), TAR_END_OF_ARCHIVE]));
    const signature = buildSignatureStream(key.key, Buffer.concat([control, data]), 0);
    const good = join(dir, 'old-1-r0.apk');
    await writeFile(good, Buffer.concat([signature, control, data]));
    expect((await verifyApk(good, keyring)).entries).toBe(1);
    const otherData = gzipMember(Buffer.concat([encodeTarEntry(header('etc', 'directory', 0), Buffer.alloc(0)), TAR_END_OF_ARCHIVE]));
    const tampered = join(dir, 'tampered-1-r0.apk');
    await writeFile(tampered, Buffer.concat([signature, control, otherData]));
    await expect(verifyApk(tampered, keyring)).rejects.toThrow(/BAD signature/);
  });
});

