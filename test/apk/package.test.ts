import { createHash, verify as rsaVerify } from 'node:crypto';
import { execa } from 'execa';
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuilderError, PackageFormatError } from '../../src/errors.ts';
import { gzipMember } from '../../src/apk/gzip.ts';
import { generateSigningKey, loadKeyring, loadSigningKey, type SigningKey } from '../../src/apk/keys.ts';
import { renderPkginfo, type PackageInfo } from '../../src/apk/pkginfo.ts';
import { listApkData, readApk } from '../../src/apk/reader.ts';
import { buildSignatureStream } from '../../src/apk/signature.ts';
import { encodeTarEntry, TAR_END_OF_ARCHIVE, type TarHeader } from '../../src/apk/tar.ts';
import { verifyApk } from '../../src/apk/verify.ts';
import { writeApk, type WriteApkOptions } from '../../src/apk/writer.ts';
import { baseInfo, gnuTarList, makeTree, splitGzipMembers, useTempDirs } from './helpers.ts';

const tempDir = useTempDirs();
const EPOCH = 1700000000;
let keyDir: string;
let key: SigningKey;
let otherKey: SigningKey;
let stranger: SigningKey;
let trusted: Map<string, import('node:crypto').KeyObject>;

beforeAll(async () => {
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  keyDir = await mkdtemp(join(tmpdir(), 'builder-apk-keys-'));
  await generateSigningKey(join(keyDir, 'builder.rsa'), { bits: 2048 });
  await mkdir(join(keyDir, 'other'));
  await generateSigningKey(join(keyDir, 'other', 'builder.rsa'), { bits: 2048 });
  key = await loadSigningKey(join(keyDir, 'builder.rsa'));
  otherKey = await loadSigningKey(join(keyDir, 'other', 'builder.rsa'));
  await generateSigningKey(join(keyDir, 'stranger.rsa'), { bits: 2048 });
  stranger = await loadSigningKey(join(keyDir, 'stranger.rsa'));
  trusted = await loadKeyring([join(keyDir, 'builder.rsa.pub')]);
});

afterAll(async () => {
  const { rm } = await import('node:fs/promises');
  await rm(keyDir, { recursive: true, force: true });
});

async function build(overrides: Partial<WriteApkOptions> = {}): Promise<{ dir: string; path: string; result: Awaited<ReturnType<typeof writeApk>> }> {
  const dir = await tempDir();
  const tree = join(dir, 'tree');
  await makeTree(tree);
  const path = join(dir, 'hello-1.2.3-r1.apk');
  const result = await writeApk({
    sourceDir: tree,
    outputPath: path,
    signingKey: key,
    sourceDateEpoch: EPOCH,
    info: baseInfo(),
    controlFiles: [
      { name: '.post-install', content: '#!/bin/sh\necho installed\n', mode: 0o755 },
      { name: '.melange.yaml', content: 'package: {name: hello}\n', mode: 0o644 },
    ],
    ...overrides,
  });
  return { dir, path, result };
}

const EXPECTED_ENTRIES = [
  'etc',
  'etc/empty.conf',
  'usr',
  'usr/bin',
  'usr/bin/hello',
  'usr/bin/hi',
  'usr/bin/su-helper',
  'usr/share',
  'usr/share/doc',
  'usr/share/doc/hello',
  'usr/share/doc/hello/README',
  'usr/share/doc/hello/README.link',
  'usr/share/doc/hello/big.dat',
  'var',
  'var/spool',
];

describe('writeApk → readApk → verifyApk', () => {
  it('round-trips a tree with every entry kind', async () => {
    const { dir, path, result } = await build();
    // Installed size: regular file bytes, the hard-linked README counted once.
    const sizes = await Promise.all(
      ['usr/bin/hello', 'usr/bin/su-helper', 'usr/share/doc/hello/README', 'etc/empty.conf', 'usr/share/doc/hello/big.dat'].map(
        async (f) => (await lstat(join(dir, 'tree', f))).size,
      ),
    );
    expect(result.info.size).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(result.fileSize).toBe((await lstat(path)).size);
    expect(result.info.datahash).toMatch(/^[0-9a-f]{64}$/);

    const read = await readApk(path);
    expect(read.info).toEqual(result.info);
    expect(read.checksum).toBe(result.checksum);
    expect(read.dataHash).toBe(result.info.datahash);
    expect(read.fileSize).toBe(result.fileSize);
    expect(read.signatures.map((s) => [s.algorithm, s.keyName])).toEqual([['RSA256', 'builder.rsa.pub']]);
    expect(read.pkginfo).toBe(renderPkginfo(result.info));
    expect(read.controlFiles.map((f) => [f.name, f.mode, f.content.toString()])).toEqual([
      ['.melange.yaml', 0o644, 'package: {name: hello}\n'],
      ['.post-install', 0o755, '#!/bin/sh\necho installed\n'],
    ]);

    const entries = await listApkData(path);
    expect(entries.map((e) => e.name)).toEqual(EXPECTED_ENTRIES);
    const byName = new Map(entries.map((e) => [e.name, e]));
    expect(byName.get('usr/bin/hello')).toMatchObject({ type: 'file', mode: 0o755 });
    expect(byName.get('usr/bin/su-helper')).toMatchObject({ type: 'file', mode: 0o4755 });
    expect(byName.get('var/spool')).toMatchObject({ type: 'directory', mode: 0o3777 });
    expect(byName.get('etc/empty.conf')).toMatchObject({ type: 'file', size: 0, sha1: createHash('sha1').digest('hex') });
    expect(byName.get('usr/bin/hi')).toMatchObject({ type: 'symlink', linkname: 'hello', sha1: createHash('sha1').update('hello').digest('hex') });
    expect(byName.get('usr/share/doc/hello/README.link')).toMatchObject({ type: 'hardlink', linkname: 'usr/share/doc/hello/README' });
    const big = await readFile(join(dir, 'tree/usr/share/doc/hello/big.dat'));
    expect(byName.get('usr/share/doc/hello/big.dat')).toMatchObject({ size: big.length, sha1: createHash('sha1').update(big).digest('hex') });
    for (const e of entries) {
      expect(e).toMatchObject({ uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: EPOCH });
      expect(e.name.startsWith('./') || e.name.startsWith('/')).toBe(false);
      const parent = e.name.includes('/') ? e.name.slice(0, e.name.lastIndexOf('/')) : undefined;
      if (parent) expect(entries.findIndex((p) => p.name === parent && p.type === 'directory')).toBeLessThan(entries.indexOf(e));
      if (e.type === 'file' || e.type === 'symlink') expect(e.sha1).toBe(e.contentSha1);
    }

    const summary = await verifyApk(path, trusted);
    expect(summary).toMatchObject({ keyName: 'builder.rsa.pub', algorithm: 'RSA256', entries: EXPECTED_ENTRIES.length, checksum: result.checksum });
    // Nothing but the package is left in the output directory.
    expect((await readdir(dir)).sort()).toEqual(['hello-1.2.3-r1.apk', 'tree']);
  });

  it('has the byte layout apk requires', async () => {
    const { dir, path, result } = await build();
    const file = await readFile(path);
    const members = splitGzipMembers(file);
    expect(members).toHaveLength(3);
    expect(members.map((m) => m.offset)).toEqual([0, members[0]!.length, members[0]!.length + members[1]!.length]);
    expect(members.reduce((n, m) => n + m.length, 0)).toBe(file.length);
    for (const m of members) expect(m.headerBytes.toString('hex')).toBe('1f8b0800000000000003');
    const [sig, control, data] = members as [typeof members[0], typeof members[0], typeof members[0]];
    const controlBytes = file.subarray(control.offset, control.offset + control.length);

    // Signature and control tars: whole blocks, no end-of-archive blocks.
    for (const m of [sig, control]) {
      expect(m.content.length % 512).toBe(0);
      expect(m.content.subarray(-1024).equals(Buffer.alloc(1024))).toBe(false);
    }
    // The data tar keeps its end-of-archive blocks.
    expect(data.content.length % 512).toBe(0);
    expect(data.content.subarray(-1024).equals(Buffer.alloc(1024))).toBe(true);

    // The signature is RSA-SHA256 over the compressed control stream, by the named key.
    await writeFile(join(dir, 'sig.tar'), sig.content);
    const sigList = await gnuTarList(join(dir, 'sig.tar'));
    expect(sigList).toHaveLength(1);
    expect(sigList[0]).toMatch(/^-rw-r--r-- 0\/0 +256 .* \.SIGN\.RSA256\.builder\.rsa\.pub$/);
    const signature = sig.content.subarray(512, 512 + 256);
    expect(rsaVerify('sha256', controlBytes, key.publicKey, signature)).toBe(true);

    // Control: .PKGINFO first, then the control files in name order.
    await writeFile(join(dir, 'control.tar'), control.content);
    expect((await gnuTarList(join(dir, 'control.tar'))).map((l) => l.split(' ').pop())).toEqual(['.PKGINFO', '.melange.yaml', '.post-install']);

    // datahash covers the compressed data stream as found; C: covers the compressed control stream.
    expect(createHash('sha256').update(file.subarray(data.offset)).digest('hex')).toBe(result.info.datahash);
    expect(result.checksum).toBe(`Q1${createHash('sha1').update(controlBytes).digest('base64')}`);
    expect(result.controlSha1.equals(createHash('sha1').update(controlBytes).digest())).toBe(true);

    // GNU tar agrees on the data entries: order, no ./ prefix, numeric owner 0/0, mtime = epoch.
    await writeFile(join(dir, 'data.tar'), data.content);
    const listing = await gnuTarList(join(dir, 'data.tar'));
    expect(listing.map((l) => l.replace(/ -> .*$/, '').replace(/ link to .*$/, '').split(' ').pop()!.replace(/\/$/, ''))).toEqual(EXPECTED_ENTRIES);
    for (const line of listing) expect(line).toMatch(/^\S+ 0\/0 +\d+ 2023-11-14 \d\d:13 /);
    expect(listing.find((l) => l.endsWith('usr/bin/su-helper'))).toMatch(/^-rwsr-xr-x/);
    expect(listing.find((l) => l.endsWith('var/spool/'))).toMatch(/^drwxrwsrwt/);
    // One APK-TOOLS.checksum.SHA1 record per regular file and symlink (the hard link needs none).
    const records = data.content.toString('latin1').match(/\d+ APK-TOOLS\.checksum\.SHA1=[0-9a-f]{40}\n/g) ?? [];
    expect(records).toHaveLength(6);
  });

  it('is byte-identical for the same tree and epoch, whatever the concurrency; another epoch differs', async () => {
    const a = await build({ concurrency: 1 });
    const b = await build({ concurrency: 4 });
    const c = await build({ sourceDateEpoch: EPOCH + 1 });
    const bytesA = await readFile(a.path);
    expect(bytesA.equals(await readFile(b.path))).toBe(true);
    expect(bytesA.equals(await readFile(c.path))).toBe(false);
    expect(a.result.checksum).toBe(b.result.checksum);
  });

  it('splits data over many deflate chunks and still produces one gzip member', async () => {
    const dir = await tempDir();
    const tree = join(dir, 'tree');
    await mkdir(tree);
    // ~5 MiB of mixed content: several of the writer's 1 MiB chunks.
    for (let i = 0; i < 5; i++) {
      const buf = Buffer.alloc(1024 * 1024 + 123 * i);
      for (let j = 0; j < buf.length; j++) buf[j] = i % 2 === 0 ? (j * 31 + (j >> 9)) & 0xff : (j * 2654435761) >>> 24;
      await writeFile(join(tree, `part${i}`), buf);
    }
    const path = join(dir, 'chunky-1-r0.apk');
    await writeApk({ sourceDir: tree, outputPath: path, signingKey: key, sourceDateEpoch: EPOCH, info: baseInfo({ pkgname: 'chunky', pkgver: '1-r0' }) });
    const members = splitGzipMembers(await readFile(path));
    expect(members).toHaveLength(3);
    expect(members[2]!.content.length).toBeGreaterThan(5 * 1024 * 1024);
    await execa('gzip', ['-t'], { input: (await readFile(path)).subarray(members[2]!.offset) });
    expect((await verifyApk(path, trusted)).entries).toBe(5);
  });

  it('handles long names (ustar prefix and PAX path), long link targets and UTF-8 names', async () => {
    const dir = await tempDir();
    const tree = join(dir, 'tree');
    const mid = `${'m'.repeat(60)}/${'n'.repeat(60)}`;
    await mkdir(join(tree, mid), { recursive: true });
    const longFile = `${mid}/${'f'.repeat(90)}`; // 212 bytes: fits prefix + name
    await writeFile(join(tree, longFile), 'long\n');
    const deep = `${mid}/${'d'.repeat(120)}`; // last component alone is longer than 100 bytes: PAX path
    await writeFile(join(tree, deep), 'deep\n');
    await symlink(`../${'t'.repeat(150)}`, join(tree, 'longlink'));
    await writeFile(join(tree, 'grüße.txt'), 'utf8\n');
    const path = join(dir, 'names-1-r0.apk');
    await writeApk({ sourceDir: tree, outputPath: path, sourceDateEpoch: EPOCH, signingKey: key, info: baseInfo({ pkgname: 'names', pkgver: '1-r0' }) });
    const names = (await listApkData(path)).map((e) => e.name);
    expect(names).toContain(longFile);
    expect(names).toContain(deep);
    expect(names).toContain('grüße.txt');
    const link = (await listApkData(path)).find((e) => e.name === 'longlink');
    expect(link?.linkname).toBe(`../${'t'.repeat(150)}`);
    await verifyApk(path, trusted);
    const data = splitGzipMembers(await readFile(path))[2]!;
    await writeFile(join(dir, 'data.tar'), data.content);
    const listing = (await gnuTarList(join(dir, 'data.tar'))).join('\n');
    expect(listing).toContain(longFile);
    expect(listing).toContain(deep);
    expect(listing).toContain(`longlink -> ../${'t'.repeat(150)}`);
  });

  it('gives an empty tree a non-zero size', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'empty'));
    const path = join(dir, 'meta-1-r0.apk');
    const r = await writeApk({ sourceDir: join(dir, 'empty'), outputPath: path, sourceDateEpoch: EPOCH, signingKey: key, info: baseInfo({ pkgname: 'meta', pkgver: '1-r0' }) });
    expect(r.info.size).toBe(1);
    expect(await listApkData(path)).toEqual([]);
    expect((await verifyApk(path, trusted)).entries).toBe(0);
  });

  it('streams entry contents to a handler, and still hashes what the handler leaves unread', async () => {
    const { dir, path } = await build();
    const { readApkData, readApkHead } = await import('../../src/apk/reader.ts');
    const head = await readApkHead(path);
    const got = new Map<string, Buffer>();
    const hashes = new Map<string, string | undefined>();
    const dataHash = await readApkData(path, head, {
      onEntry: async (entry, content) => {
        if (entry.name === 'usr/bin/hello') {
          const parts: Buffer[] = [];
          for await (const piece of content) parts.push(Buffer.from(piece));
          got.set(entry.name, Buffer.concat(parts));
        } else if (entry.name === 'usr/share/doc/hello/big.dat') {
          // Read only the first piece and stop.
          for await (const piece of content) {
            got.set(entry.name, Buffer.from(piece));
            break;
          }
        }
      },
      onEntryRead: (entry) => void hashes.set(entry.name, entry.contentSha1),
    });
    expect(dataHash).toBe(head.info.datahash);
    expect(got.get('usr/bin/hello')?.toString()).toBe('#!/bin/sh\necho hello\n');
    const big = await readFile(join(dir, 'tree/usr/share/doc/hello/big.dat'));
    expect(big.subarray(0, got.get('usr/share/doc/hello/big.dat')!.length).equals(got.get('usr/share/doc/hello/big.dat')!)).toBe(true);
    expect(hashes.get('usr/share/doc/hello/big.dat')).toBe(createHash('sha1').update(big).digest('hex'));
  });

  it('writes an unsigned package without a signature stream', async () => {
    const { path } = await build({ signingKey: undefined });
    expect(splitGzipMembers(await readFile(path))).toHaveLength(2);
    const read = await readApk(path);
    expect(read.signatures).toEqual([]);
    await expect(verifyApk(path, trusted)).rejects.toThrow(/UNTRUSTED signature: not signed/);
  });
});

describe('writeApk refuses bad input and leaves nothing behind', () => {
  it('refuses a FIFO, naming it', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'tree/run'), { recursive: true });
    await execa('mkfifo', [join(dir, 'tree/run/pipe')]);
    const err = await writeApk({ sourceDir: join(dir, 'tree'), outputPath: join(dir, 'x-1-r0.apk'), sourceDateEpoch: EPOCH, info: baseInfo() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuilderError);
    expect((err as Error).message).toMatch(/tree\/run\/pipe: cannot package a FIFO/);
    expect(await readdir(dir)).toEqual(['tree']);
  });

  it.each([
    [{ info: baseInfo({ pkgname: 'bad name' }) }, /pkgname "bad name" is not a valid package name/],
    [{ info: baseInfo({ pkgver: '1.0' }) }, /lacks the -r<epoch> suffix/],
    [{ info: baseInfo({ pkgdesc: 'two\nlines' }) }, /pkgdesc contains a line break/],
    [{ info: baseInfo({ depend: ['a b'] }) }, /depend item "a b"/],
    [{ sourceDateEpoch: -1 }, /SOURCE_DATE_EPOCH -1/],
    [{ controlFiles: [{ name: 'post-install', content: '', mode: 0o755 }] }, /must be a dot-file name/],
    [{ controlFiles: [{ name: '.PKGINFO', content: '', mode: 0o644 }] }, /is reserved/],
    [{ sourceDir: '/nonexistent/tree' }, /cannot read package directory \/nonexistent\/tree/],
  ] as [Partial<WriteApkOptions>, RegExp][])('%#: %s', async (overrides, message) => {
    const dir = await tempDir();
    await makeTree(join(dir, 'tree'));
    const opts: WriteApkOptions = { sourceDir: join(dir, 'tree'), outputPath: join(dir, 'out.apk'), sourceDateEpoch: EPOCH, info: baseInfo(), ...overrides };
    await expect(writeApk(opts)).rejects.toThrow(message);
    expect(await readdir(dir)).toEqual(['tree']);
  });
});

// ------------------------------------------------------------------------------------------------------
// Hand-made packages, to check that the verifier refuses each defect.

interface CraftEntry {
  header: Partial<TarHeader> & { name: string };
  content?: Buffer;
  /** false: no checksum record; a string: this (wrong) checksum. */
  sha1?: false | string;
}

function craftData(entries: CraftEntry[]): Buffer {
  const parts = entries.map(({ header, content = Buffer.alloc(0), sha1 }) => {
    const type = header.type ?? 'file';
    const h: TarHeader = { type, mode: type === 'directory' ? 0o755 : 0o644, size: content.length, mtime: EPOCH, uid: 0, gid: 0, uname: 'root', gname: 'root', ...header };
    if (sha1 !== false && (type === 'file' || type === 'symlink')) {
      const real = createHash('sha1').update(type === 'file' ? content : Buffer.from(h.linkname ?? '')).digest('hex');
      h.pax = [['APK-TOOLS.checksum.SHA1', sha1 ?? real]];
    }
    return encodeTarEntry(h, content);
  });
  return gzipMember(Buffer.concat([...parts, TAR_END_OF_ARCHIVE]));
}

function craftApk(opts: {
  data?: CraftEntry[];
  info?: Partial<PackageInfo>;
  pkginfoText?: (datahash: string) => string;
  controlEndBlocks?: boolean;
  signWith?: SigningKey | null;
}): Buffer {
  const data = craftData(opts.data ?? [{ header: { name: 'etc/', type: 'directory' } }, { header: { name: 'etc/x' }, content: Buffer.from('x') }]);
  const datahash = createHash('sha256').update(data).digest('hex');
  const info: PackageInfo = { ...baseInfo(), size: 1, datahash, ...opts.info };
  const text = opts.pkginfoText ? opts.pkginfoText(datahash) : renderPkginfo(info);
  const pkginfo = Buffer.from(text);
  const controlTar = Buffer.concat([
    encodeTarEntry({ name: '.PKGINFO', type: 'file', mode: 0o644, size: pkginfo.length, mtime: EPOCH, uid: 0, gid: 0, uname: 'root', gname: 'root' }, pkginfo),
    opts.controlEndBlocks ? TAR_END_OF_ARCHIVE : Buffer.alloc(0),
  ]);
  const control = gzipMember(controlTar);
  const signer = opts.signWith === undefined ? key : opts.signWith;
  const sig = signer ? buildSignatureStream(signer, control, EPOCH) : Buffer.alloc(0);
  return Buffer.concat([sig, control, data]);
}

async function expectRejected(bytes: Buffer, message: RegExp): Promise<void> {
  const dir = await tempDir();
  const path = join(dir, 'crafted.apk');
  await writeFile(path, bytes);
  const err = await verifyApk(path, trusted).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PackageFormatError);
  expect((err as Error).message).toContain(path);
  expect((err as Error).message).toMatch(message);
}

describe('verifyApk refuses', () => {
  it('accepts the well-formed crafted baseline (so the cases below fail for their own reason)', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'ok.apk'), craftApk({}));
    expect((await verifyApk(join(dir, 'ok.apk'), trusted)).entries).toBe(2);
  });

  it('a package signed by an untrusted key (UNTRUSTED)', async () => {
    await expectRejected(craftApk({ signWith: stranger }), /UNTRUSTED signature: signed by stranger\.rsa\.pub/);
    // Same key name, different key: the signature does not verify.
    const { path } = await build({ signingKey: otherKey });
    await expect(verifyApk(path, trusted)).rejects.toThrow(/BAD signature/);
    await expect(verifyApk(path, new Map())).rejects.toThrow(/UNTRUSTED signature: signed by builder\.rsa\.pub/);
  });

  it('an unsigned package (UNTRUSTED)', async () => {
    await expectRejected(craftApk({ signWith: null }), /UNTRUSTED signature: not signed/);
  });

  it('a tampered data byte (BAD signature)', async () => {
    const { path } = await build();
    const bytes = await readFile(path);
    const data = splitGzipMembers(bytes)[2]!;
    for (const at of [data.offset + 20, data.offset + Math.floor(data.length / 2), bytes.length - 5]) {
      const copy = Buffer.from(bytes);
      copy[at] = (copy[at] ?? 0) ^ 0x01;
      await expectRejected(copy, /BAD signature/);
    }
  });

  it('replaced data with a valid stream of its own (BAD signature: datahash)', async () => {
    const good = craftApk({});
    const members = splitGzipMembers(good);
    const evil = craftData([{ header: { name: 'etc/', type: 'directory' } }, { header: { name: 'etc/x' }, content: Buffer.from('evil') }]);
    await expectRejected(Buffer.concat([good.subarray(0, members[2]!.offset), evil]), /BAD signature: data stream does not match datahash/);
  });

  it('a tampered control stream (BAD signature), and a flipped control byte', async () => {
    const good = craftApk({});
    const [sig, control] = splitGzipMembers(good) as [ReturnType<typeof splitGzipMembers>[0], ReturnType<typeof splitGzipMembers>[0]];
    // Re-compressed with a changed description: well-formed, but not what was signed.
    const text = control.content.toString('latin1').replace('hello test package', 'hello evil package');
    const forged = gzipMember(Buffer.from(text, 'latin1'));
    await expectRejected(Buffer.concat([good.subarray(0, sig.length), forged, good.subarray(control.offset + control.length)]), /BAD signature/);
    const flipped = Buffer.from(good);
    flipped[control.offset + 30] = (flipped[control.offset + 30] ?? 0) ^ 0x04;
    await expectRejected(flipped, /control stream|BAD signature/);
  });

  it('a control tar that keeps its end-of-archive blocks', async () => {
    await expectRejected(craftApk({ controlEndBlocks: true }), /end-of-archive blocks \(apk reports BAD archive\)/);
  });

  it('missing .PKGINFO fields and size 0', async () => {
    await expectRejected(craftApk({ pkginfoText: (h) => `pkgver = 1.0-r0\narch = x86_64\nsize = 1\ndatahash = ${h}\n` }), /\.PKGINFO has no pkgname/);
    await expectRejected(craftApk({ pkginfoText: (h) => `pkgname = a\narch = x86_64\nsize = 1\ndatahash = ${h}\n` }), /\.PKGINFO has no pkgver/);
    await expectRejected(craftApk({ pkginfoText: (h) => `pkgname = a\npkgver = 1.0-r0\narch = x86_64\nsize = 0\ndatahash = ${h}\n` }), /size must be non-zero/);
    await expectRejected(craftApk({ pkginfoText: () => `pkgname = a\npkgver = 1.0-r0\narch = x86_64\nsize = 1\n` }), /BAD signature/);
  });

  it('a missing .PKGINFO', async () => {
    const data = craftData([]);
    const body = Buffer.from('#!/bin/sh\n');
    const control = gzipMember(encodeTarEntry({ name: '.post-install', type: 'file', mode: 0o755, size: body.length, mtime: EPOCH, uid: 0, gid: 0, uname: 'root', gname: 'root' }, body));
    await expectRejected(Buffer.concat([buildSignatureStream(key, control, EPOCH), control, data]), /\.PKGINFO missing/);
  });

  it.each([
    ['a ./ prefix', [{ header: { name: './etc/', type: 'directory' } }], /entry "\.\/etc": path starts with "\.\/"/],
    ['an absolute path', [{ header: { name: '/etc/passwd' }, content: Buffer.from('x') }], /entry "\/etc\/passwd": absolute path/],
    [
      'a .. component',
      [{ header: { name: 'usr/', type: 'directory' } }, { header: { name: 'usr/../../x' }, content: Buffer.from('x') }],
      /entry "usr\/\.\.\/\.\.\/x": "\.\." path component/,
    ],
    ['a missing parent dirent', [{ header: { name: 'usr/bin/x' }, content: Buffer.from('x') }], /entry "usr\/bin\/x": parent directory usr\/bin has no entry/],
    [
      'a missing checksum',
      [{ header: { name: 'etc/', type: 'directory' } }, { header: { name: 'etc/x' }, content: Buffer.from('x'), sha1: false }],
      /entry "etc\/x": no APK-TOOLS\.checksum\.SHA1 record/,
    ],
    [
      'a wrong checksum',
      [{ header: { name: 'etc/', type: 'directory' } }, { header: { name: 'etc/x' }, content: Buffer.from('x'), sha1: '0'.repeat(40) }],
      /entry "etc\/x": APK-TOOLS\.checksum\.SHA1 0{40} does not match the content/,
    ],
    [
      'a symlink with a wrong checksum',
      [{ header: { name: 'l', type: 'symlink', linkname: 'target' }, sha1: '1'.repeat(40) }],
      /entry "l": APK-TOOLS\.checksum\.SHA1 1{40} does not match the link target/,
    ],
    ['a dangling hard link', [{ header: { name: 'h', type: 'hardlink', linkname: 'nothing' } }], /entry "h": hard link to nothing/],
    ['a duplicate entry', [{ header: { name: 'a' }, content: Buffer.from('1') }, { header: { name: 'a' }, content: Buffer.from('1') }], /entry "a": appears twice/],
  ] as [string, CraftEntry[], RegExp][])('data with %s, naming package and entry', async (_what, data, message) => {
    await expectRejected(craftApk({ data }), /\(hello-1\.2\.3-r1\)/);
    await expectRejected(craftApk({ data }), message);
  });

  it('truncated and garbage files, naming the file', async () => {
    const { path } = await build();
    const bytes = await readFile(path);
    await expectRejected(bytes.subarray(0, 200), /truncated gzip stream|missing/);
    await expectRejected(bytes.subarray(0, bytes.length - 100), /BAD signature|data stream/);
    await expectRejected(Buffer.from('not a package at all'), /not a gzip stream/);
    await expectRejected(Buffer.concat([bytes, Buffer.from('trailing junk')]), /BAD signature|data stream/);
  });
});
