import { createHash, verify as rsaVerify, type KeyObject } from 'node:crypto';
import { execa } from 'execa';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PackageFormatError } from '../../src/errors.ts';
import { gzipMember } from '../../src/apk/gzip.ts';
import {
  indexEntryFromApk,
  parseApkIndex,
  readApkIndex,
  renderApkIndex,
  updateApkIndex,
  writeApkIndex,
  type IndexEntry,
} from '../../src/apk/index.ts';
import { generateSigningKey, loadKeyring, loadSigningKey, type SigningKey } from '../../src/apk/keys.ts';
import { readApk } from '../../src/apk/reader.ts';
import { verifyApkIndex } from '../../src/apk/verify.ts';
import { writeApk } from '../../src/apk/writer.ts';
import { baseInfo, gnuTarList, makeTree, splitGzipMembers, useTempDirs } from './helpers.ts';

const tempDir = useTempDirs();
let keyDir: string;
let key: SigningKey;
let stranger: SigningKey;
let trusted: Map<string, KeyObject>;

beforeAll(async () => {
  keyDir = await mkdtemp(join(tmpdir(), 'builder-apk-index-keys-'));
  await generateSigningKey(join(keyDir, 'repo.rsa'), { bits: 2048 });
  await generateSigningKey(join(keyDir, 'stranger.rsa'), { bits: 2048 });
  key = await loadSigningKey(join(keyDir, 'repo.rsa'));
  stranger = await loadSigningKey(join(keyDir, 'stranger.rsa'));
  trusted = await loadKeyring([join(keyDir, 'repo.rsa.pub')]);
});

afterAll(async () => {
  await rm(keyDir, { recursive: true, force: true });
});

// The example stanza from shared/notes/apk-format.md, as apk itself writes it.
const EXAMPLE_STANZA = `C:Q1hzagU2vnIAS7Dny0QgH6ECIEJw4=
P:libfoo
V:1.2.3-r1
A:x86_64
S:1286
I:4096
T:libfoo test package
U:https://example.invalid/
L:MIT
o:libfoo
m:Test <test@example.invalid>
t:1700000000
c:0123456789abcdef0123456789abcdef01234567
p:so:libfoo.so.1=1.2.3 cmd:foo-config=1.2.3
`;

const EXAMPLE_ENTRY: IndexEntry = {
  checksum: 'Q1hzagU2vnIAS7Dny0QgH6ECIEJw4=',
  pkgname: 'libfoo',
  pkgver: '1.2.3-r1',
  arch: 'x86_64',
  fileSize: 1286,
  size: 4096,
  pkgdesc: 'libfoo test package',
  url: 'https://example.invalid/',
  license: ['MIT'],
  origin: 'libfoo',
  maintainer: 'Test <test@example.invalid>',
  builddate: 1700000000,
  commit: '0123456789abcdef0123456789abcdef01234567',
  depend: [],
  provides: ['so:libfoo.so.1=1.2.3', 'cmd:foo-config=1.2.3'],
  replaces: [],
  installIf: [],
  triggers: [],
};

function entry(name: string, version: string, checksumSeed = name + version): IndexEntry {
  return {
    ...EXAMPLE_ENTRY,
    pkgname: name,
    pkgver: version,
    checksum: `Q1${createHash('sha1').update(checksumSeed).digest('base64')}`,
  };
}

describe('renderApkIndex / parseApkIndex', () => {
  it('writes the example stanza exactly as apk does', () => {
    expect(renderApkIndex([EXAMPLE_ENTRY])).toBe(`${EXAMPLE_STANZA}\n`);
  });

  it('parses the example stanza back to the same entry', () => {
    expect(parseApkIndex(`${EXAMPLE_STANZA}\n`, 'APKINDEX')).toEqual([EXAMPLE_ENTRY]);
  });

  it('orders every field C P V A S I T U L o m t c k, then D p i, and always writes T U L', () => {
    const full: IndexEntry = { ...EXAMPLE_ENTRY, providerPriority: 100, depend: ['a', 'b>=1'], installIf: ['x', 'y'] };
    const fields = renderApkIndex([full]).trim().split('\n').map((l) => l[0]);
    expect(fields.join('')).toBe('CPVASITULomtckDpi');
    const bare: IndexEntry = { ...entry('bare', '1-r0'), pkgdesc: undefined, url: undefined, license: [], origin: undefined, maintainer: undefined, builddate: undefined, commit: undefined, provides: [] };
    expect(renderApkIndex([bare])).toMatch(/\nT:\nU:\nL:\n\n$/);
    expect(parseApkIndex(renderApkIndex([bare]), 'x')).toEqual([bare]);
  });

  it('sorts stanzas by name, then apk version, blank-line separated', () => {
    const text = renderApkIndex([entry('zlib', '1.3-r0'), entry('abc', '1.10-r0'), entry('abc', '1.9-r0'), entry('abc', '1.9_rc1-r0')]);
    expect([...text.matchAll(/^P:(.*)\nV:(.*)$/gm)].map((m) => `${m[1]}-${m[2]}`)).toEqual(['abc-1.9_rc1-r0', 'abc-1.9-r0', 'abc-1.10-r0', 'zlib-1.3-r0']);
    expect(text.split('\n\n')).toHaveLength(5);
  });

  it('refuses duplicates and invalid entries', () => {
    expect(() => renderApkIndex([entry('a', '1-r0'), entry('a', '1-r0', 'other')])).toThrow(/lists a-1-r0 twice/);
    expect(() => renderApkIndex([{ ...entry('a', '1-r0'), checksum: 'nope' }])).toThrow(/checksum "nope"/);
    expect(() => renderApkIndex([{ ...entry('a', '1-r0'), pkgdesc: 'x\nP:evil' }])).toThrow(/pkgdesc contains a line break/);
  });

  it.each([
    ['P:a\nV:1-r0\nS:1\nI:1\n', /APKINDEX:1: index stanza lacks C:/],
    [`${EXAMPLE_STANZA}S:2\n`, /APKINDEX:15: field S: appears twice/],
    [`${EXAMPLE_STANZA}X:unknown\n`, /APKINDEX:15: unknown index field X:/],
    [`${EXAMPLE_STANZA}garbage\n`, /APKINDEX:15: malformed index line "garbage"/],
    [EXAMPLE_STANZA.replace('S:1286', 'S:12x'), /APKINDEX:5: S:12x is not a non-negative integer/],
  ])('rejects malformed text %#, naming the line', (text, message) => {
    expect(() => parseApkIndex(text, 'APKINDEX')).toThrow(PackageFormatError);
    expect(() => parseApkIndex(text, 'APKINDEX')).toThrow(message);
  });

  it('ignores unknown lower-case fields, as apk does', () => {
    expect(parseApkIndex(`${EXAMPLE_STANZA}z:whatever\n\n`, 'x')).toEqual([EXAMPLE_ENTRY]);
  });
});

describe('writeApkIndex / readApkIndex', () => {
  it('writes a signed index: signature stream + one tar.gz with DESCRIPTION and APKINDEX and a full trailer', async () => {
    const dir = await tempDir();
    const path = join(dir, 'APKINDEX.tar.gz');
    await writeApkIndex({ path, entries: [entry('b', '1-r0'), EXAMPLE_ENTRY], signingKey: key, description: 'test repo' });
    const file = await readFile(path);
    const [sig, body] = splitGzipMembers(file) as [ReturnType<typeof splitGzipMembers>[0], ReturnType<typeof splitGzipMembers>[0]];
    expect(splitGzipMembers(file)).toHaveLength(2);
    expect(sig.content.subarray(-1024).equals(Buffer.alloc(1024))).toBe(false);
    expect(body.content.subarray(-1024).equals(Buffer.alloc(1024))).toBe(true);
    // The signature covers the whole unsigned tar.gz that follows it.
    expect(rsaVerify('sha256', file.subarray(body.offset), key.publicKey, sig.content.subarray(512, 512 + 256))).toBe(true);
    await writeFile(join(dir, 'index.tar'), body.content);
    expect((await gnuTarList(join(dir, 'index.tar'))).map((l) => l.split(' ').pop())).toEqual(['DESCRIPTION', 'APKINDEX']);

    const index = await readApkIndex(path, trusted);
    expect(index.verified).toEqual({ keyName: 'repo.rsa.pub', algorithm: 'RSA256' });
    expect(index.description).toBe('test repo');
    expect(index.entries.map((e) => e.pkgname)).toEqual(['b', 'libfoo']);
    expect((await verifyApkIndex(path, trusted)).keyName).toBe('repo.rsa.pub');
  });

  it('writes an unsigned index that plain tar can read, and identical bytes for identical input', async () => {
    const dir = await tempDir();
    const a = join(dir, 'a.tar.gz');
    const b = join(dir, 'b.tar.gz');
    await writeApkIndex({ path: a, entries: [EXAMPLE_ENTRY, entry('b', '1-r0')] });
    await writeApkIndex({ path: b, entries: [entry('b', '1-r0'), EXAMPLE_ENTRY] });
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);
    expect((await execa('tar', ['-tzf', a])).stdout).toBe('APKINDEX');
    const text = (await execa('tar', ['-xzOf', a, 'APKINDEX'])).stdout;
    expect(`${text}\n\n`).toContain(EXAMPLE_STANZA);
    await expect(readApkIndex(a, trusted)).rejects.toThrow(/UNTRUSTED signature: not signed/);
    expect((await readApkIndex(a)).entries).toHaveLength(2);
    // Signed twice with the same key: also identical (RSA PKCS#1 v1.5 signatures are deterministic).
    await writeApkIndex({ path: a, entries: [EXAMPLE_ENTRY], signingKey: key });
    await writeApkIndex({ path: b, entries: [EXAMPLE_ENTRY], signingKey: key });
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);
  });

  it('rejects a tampered, forged or untrusted index', async () => {
    const dir = await tempDir();
    const path = join(dir, 'APKINDEX.tar.gz');
    await writeApkIndex({ path, entries: [EXAMPLE_ENTRY], signingKey: key });
    const good = await readFile(path);
    const [sig] = splitGzipMembers(good);

    const flipped = Buffer.from(good);
    flipped[good.length - 40] = (flipped[good.length - 40] ?? 0) ^ 0x01;
    await writeFile(path, flipped);
    await expect(readApkIndex(path, trusted)).rejects.toThrow(PackageFormatError);

    // A well-formed index with a changed stanza behind the original signature.
    const forgedText = renderApkIndex([{ ...EXAMPLE_ENTRY, depend: ['evil'] }]);
    const { encodeTarEntry, TAR_END_OF_ARCHIVE } = await import('../../src/apk/tar.ts');
    const t = Buffer.from(forgedText);
    const forgedBody = gzipMember(Buffer.concat([encodeTarEntry({ name: 'APKINDEX', type: 'file', mode: 0o644, size: t.length, mtime: 0, uid: 0, gid: 0, uname: 'root', gname: 'root' }, t), TAR_END_OF_ARCHIVE]));
    await writeFile(path, Buffer.concat([good.subarray(0, sig!.length), forgedBody]));
    await expect(readApkIndex(path, trusted)).rejects.toThrow(/BAD signature/);

    await writeApkIndex({ path, entries: [EXAMPLE_ENTRY], signingKey: stranger });
    await expect(readApkIndex(path, trusted)).rejects.toThrow(/UNTRUSTED signature: signed by stranger\.rsa\.pub/);
    await expect(verifyApkIndex(path, trusted)).rejects.toThrow(/UNTRUSTED/);

    await writeFile(path, Buffer.concat([good, Buffer.from('junk')]));
    await expect(readApkIndex(path)).rejects.toThrow(/unexpected data after the index stream|not a gzip stream/);
  });
});

describe('updateApkIndex', () => {
  it('creates the index, then merges: same name+version replaced, others kept', async () => {
    const dir = await tempDir();
    const path = join(dir, 'APKINDEX.tar.gz');
    await updateApkIndex({ path, add: [entry('a', '1-r0'), entry('b', '1-r0')], signingKey: key, description: 'repo' });
    const replaced = entry('a', '1-r0', 'rebuilt');
    const r = await updateApkIndex({ path, add: [replaced, entry('a', '2-r0')], signingKey: key });
    expect(r.entries.map((e) => `${e.pkgname}-${e.pkgver}`)).toEqual(['a-1-r0', 'a-2-r0', 'b-1-r0']);
    const index = await readApkIndex(path, trusted);
    expect(index.entries.map((e) => `${e.pkgname}-${e.pkgver}`)).toEqual(['a-1-r0', 'a-2-r0', 'b-1-r0']);
    expect(index.entries[0]!.checksum).toBe(replaced.checksum);
    expect(index.description).toBe('repo');
    expect((await readdir(dir)).sort()).toEqual(['APKINDEX.tar.gz']);
  });

  it('refuses to replace a tampered or foreign-signed existing index', async () => {
    const dir = await tempDir();
    const path = join(dir, 'APKINDEX.tar.gz');
    await updateApkIndex({ path, add: [entry('a', '1-r0')], signingKey: key });
    const bytes = await readFile(path);
    const tampered = Buffer.from(bytes);
    tampered[bytes.length - 30] = (tampered[bytes.length - 30] ?? 0) ^ 0x01;
    await writeFile(path, tampered);
    await expect(updateApkIndex({ path, add: [entry('b', '1-r0')], signingKey: key })).rejects.toThrow(PackageFormatError);
    expect((await readFile(path)).equals(tampered)).toBe(true);

    await writeFile(path, 'not an index');
    await expect(updateApkIndex({ path, add: [entry('b', '1-r0')] })).rejects.toThrow(/not a gzip stream/);

    await writeApkIndex({ path, entries: [entry('a', '1-r0')], signingKey: stranger });
    await expect(updateApkIndex({ path, add: [entry('b', '1-r0')], signingKey: key })).rejects.toThrow(/signed by stranger\.rsa\.pub, not by repo\.rsa\.pub/);
    await expect(updateApkIndex({ path, add: [entry('b', '1-r0')], keyring: trusted })).rejects.toThrow(/UNTRUSTED/);
    expect((await readdir(dir)).sort()).toEqual(['APKINDEX.tar.gz']);
  });

  it('loses no update when many run at once in one process', async () => {
    const dir = await tempDir();
    const path = join(dir, 'APKINDEX.tar.gz');
    await Promise.all(Array.from({ length: 12 }, (_, i) => updateApkIndex({ path, add: [entry(`p${i}`, '1-r0')], signingKey: key })));
    const index = await readApkIndex(path, trusted);
    expect(index.entries.map((e) => e.pkgname).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `p${i}`).sort());
  });

  it('loses no update when several processes update at once', async () => {
    const dir = await tempDir();
    const path = join(dir, 'APKINDEX.tar.gz');
    const indexModule = resolve('src/apk/index.ts');
    const keysModule = resolve('src/apk/keys.ts');
    const script = `
      import { updateApkIndex } from ${JSON.stringify(indexModule)};
      import { loadSigningKey } from ${JSON.stringify(keysModule)};
      const [path, keyPath, worker] = process.argv.slice(2);
      const key = await loadSigningKey(keyPath);
      for (let i = 0; i < 5; i++) {
        const checksum = 'Q1' + Buffer.alloc(20, Number(worker) * 10 + i).toString('base64');
        await updateApkIndex({ path, signingKey: key, add: [{ pkgname: 'w' + worker + '-' + i, pkgver: '1-r0', arch: 'x86_64', size: 1, fileSize: 1,
          checksum, license: [], depend: [], provides: [], replaces: [], installIf: [], triggers: [] }] });
      }
    `;
    await mkdir(join(dir, 'scripts'));
    await writeFile(join(dir, 'scripts', 'update.mjs'), script);
    await Promise.all(
      [0, 1, 2].map((w) => execa('node', [join(dir, 'scripts', 'update.mjs'), path, join(keyDir, 'repo.rsa'), String(w)])),
    );
    const names = (await readApkIndex(path, trusted)).entries.map((e) => e.pkgname).sort();
    expect(names).toEqual([0, 1, 2].flatMap((w) => [0, 1, 2, 3, 4].map((i) => `w${w}-${i}`)).sort());
    expect((await readdir(dir)).sort()).toEqual(['APKINDEX.tar.gz', 'scripts']);
  });
});

describe('indexEntryFromApk', () => {
  it('makes the stanza of a real package: C from the control stream, S the file size, I the installed size', async () => {
    const dir = await tempDir();
    await makeTree(join(dir, 'tree'));
    const path = join(dir, 'hello-1.2.3-r1.apk');
    const written = await writeApk({ sourceDir: join(dir, 'tree'), outputPath: path, signingKey: key, sourceDateEpoch: 1700000000, info: baseInfo() });
    const e = indexEntryFromApk(await readApk(path));
    expect(e).toEqual({ ...written.info, checksum: written.checksum, fileSize: written.fileSize });
    const stanza = renderApkIndex([e]);
    expect(stanza).toContain(`\nS:${(await readFile(path)).length}\nI:${written.info.size}\n`);
    expect(stanza).toContain('\nD:so:libc.musl-x86_64.so.1 busybox>=1.36\np:cmd:hello=1.2.3-r1\n');
  });
});
