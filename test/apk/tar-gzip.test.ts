import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { PackageFormatError } from '../../src/errors.ts';
import { gzipMember, inflateGzipMember, ParallelGzipWriter } from '../../src/apk/gzip.ts';
import { encodeTarEntry, encodeTarHeader, paxRecord, readTarBuffer, TAR_END_OF_ARCHIVE, type TarHeader } from '../../src/apk/tar.ts';
import { gnuTarList, useTempDirs } from './helpers.ts';

const tempDir = useTempDirs();
const H: Omit<TarHeader, 'name' | 'size'> = { type: 'file', mode: 0o644, mtime: 1700000000, uid: 0, gid: 0, uname: 'root', gname: 'root' };

async function gzipAll(data: Buffer, opts: { concurrency: number; chunkSize?: number; pieces?: number }): Promise<Buffer> {
  const out: Buffer[] = [];
  const gz = new ParallelGzipWriter(async (b) => void out.push(Buffer.from(b)), { concurrency: opts.concurrency, chunkSize: opts.chunkSize ?? 64 * 1024 });
  // Feed in uneven pieces, so chunk boundaries never line up with writes.
  const step = Math.ceil(data.length / (opts.pieces ?? 7));
  for (let i = 0; i < data.length; i += step) await gz.write(data.subarray(i, i + step));
  await gz.finish();
  return Buffer.concat(out);
}

describe('ParallelGzipWriter', () => {
  const data = Buffer.alloc(700 * 1024 + 17);
  for (let i = 0; i < data.length; i++) data[i] = i % 3 === 0 ? (i * 2654435761) >>> 24 : (i >> 6) & 0x7f;

  it('produces one valid gzip member that gzip and zlib both accept', async () => {
    const gz = await gzipAll(data, { concurrency: 3 });
    expect(gunzipSync(gz).equals(data)).toBe(true);
    const member = inflateGzipMember(gz, 0, 'x', 1 << 30);
    expect(member?.end).toBe(gz.length);
    const r = await execa('gzip', ['-dc'], { input: gz, encoding: 'buffer' });
    expect(Buffer.from(r.stdout).equals(data)).toBe(true);
  });

  it('produces the same bytes whatever the concurrency and however the input is split', async () => {
    const a = await gzipAll(data, { concurrency: 1, pieces: 3 });
    const b = await gzipAll(data, { concurrency: 4, pieces: 50 });
    expect(a.equals(b)).toBe(true);
    // A different chunk size is allowed to change the bytes, not the content.
    const c = await gzipAll(data, { concurrency: 2, chunkSize: 256 * 1024 });
    expect(gunzipSync(c).equals(data)).toBe(true);
  });

  it('handles empty input and exact multiples of the chunk size', async () => {
    expect(gunzipSync(await gzipAll(Buffer.alloc(0), { concurrency: 2 })).length).toBe(0);
    const exact = data.subarray(0, 128 * 1024);
    expect(gunzipSync(await gzipAll(exact, { concurrency: 2 })).equals(exact)).toBe(true);
  });
});

describe('inflateGzipMember', () => {
  it('finds the end of each concatenated member and checks CRC and length', () => {
    const a = gzipMember(Buffer.from('first'));
    const b = gzipMember(Buffer.from('second'));
    const both = Buffer.concat([a, b]);
    const m1 = inflateGzipMember(both, 0, 'x', 1024)!;
    expect([m1.end, m1.content.toString()]).toEqual([a.length, 'first']);
    const m2 = inflateGzipMember(both, m1.end, 'x', 1024)!;
    expect([m2.end, m2.content.toString()]).toEqual([both.length, 'second']);
    expect(inflateGzipMember(both.subarray(0, a.length - 3), 0, 'x', 1024)).toBeUndefined();
    const badCrc = Buffer.from(a);
    badCrc[a.length - 8] = (badCrc[a.length - 8] ?? 0) ^ 1;
    expect(() => inflateGzipMember(badCrc, 0, 'pkg.apk', 1024)).toThrow(/pkg\.apk: gzip CRC mismatch/);
    expect(() => inflateGzipMember(Buffer.from('plain text here'), 0, 'pkg.apk', 1024)).toThrow(PackageFormatError);
    expect(() => inflateGzipMember(gzipMember(Buffer.alloc(5000)), 0, 'pkg.apk', 1000)).toThrow(/more than 1000 bytes/);
  });

  it('skips optional header fields written by other gzip implementations', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'named.txt'), 'with a name\n');
    await execa('gzip', ['-k', '-N', join(dir, 'named.txt')]);
    const { readFile } = await import('node:fs/promises');
    const gz = await readFile(join(dir, 'named.txt.gz'));
    expect(gz[3]! & 0x08).toBe(0x08); // FNAME set
    expect(inflateGzipMember(gz, 0, 'x', 1024)?.content.toString()).toBe('with a name\n');
  });
});

describe('tar encoding', () => {
  it('computes PAX record lengths across digit-count boundaries', () => {
    for (const valueLength of [0, 1, 85, 86, 87, 88, 89, 90, 984, 985, 986, 987, 988]) {
      const rec = paxRecord('k', 'v'.repeat(valueLength));
      const declared = Number(rec.toString().split(' ')[0]);
      expect(declared).toBe(rec.length);
    }
  });

  it('writes headers GNU tar reads back: modes, ustar prefix, PAX path/linkpath, UTF-8', async () => {
    const dir = await tempDir();
    const longDir = `${'a'.repeat(80)}/${'b'.repeat(70)}`;
    const entries = [
      encodeTarEntry({ ...H, name: 'plain', size: 2 }, Buffer.from('hi')),
      encodeTarEntry({ ...H, name: 'suid', mode: 0o4755, size: 0 }, Buffer.alloc(0)),
      encodeTarHeader({ ...H, name: 'dir/', type: 'directory', mode: 0o1777, size: 0 }),
      encodeTarEntry({ ...H, name: `${longDir}/file`, size: 0 }, Buffer.alloc(0)),
      encodeTarEntry({ ...H, name: `${'c'.repeat(200)}`, size: 0 }, Buffer.alloc(0)),
      encodeTarHeader({ ...H, name: 'link', type: 'symlink', mode: 0o777, size: 0, linkname: 'x'.repeat(120) }),
      encodeTarEntry({ ...H, name: 'naïve €', size: 0, pax: [['APK-TOOLS.checksum.SHA1', 'da39a3ee5e6b4b0d3255bfef95601890afd80709']] }, Buffer.alloc(0)),
      TAR_END_OF_ARCHIVE,
    ];
    const tar = Buffer.concat(entries);
    expect(tar.length % 512).toBe(0);
    await writeFile(join(dir, 't.tar'), tar);
    const lines = await gnuTarList(join(dir, 't.tar'));
    expect(lines).toHaveLength(7);
    expect(lines[0]).toMatch(/^-rw-r--r-- 0\/0 +2 2023-11-14 \d\d:13 plain$/);
    expect(lines[1]).toMatch(/^-rwsr-xr-x .* suid$/);
    expect(lines[2]).toMatch(/^drwxrwxrwt .* dir\/$/);
    expect(lines[3]).toMatch(new RegExp(`${longDir}/file$`));
    expect(lines[4]).toMatch(new RegExp(`${'c'.repeat(200)}$`));
    expect(lines[5]).toMatch(new RegExp(`link -> ${'x'.repeat(120)}$`));
    expect(lines[6]).toMatch(/naïve €$/);

    const parsed = await readTarBuffer(tar, 't.tar', 'required');
    expect(parsed.map((p) => p.entry.name)).toEqual(['plain', 'suid', 'dir/', `${longDir}/file`, 'c'.repeat(200), 'link', 'naïve €']);
    expect(parsed[6]!.entry.pax.get('APK-TOOLS.checksum.SHA1')).toBe('da39a3ee5e6b4b0d3255bfef95601890afd80709');
    expect(parsed[5]!.entry.linkname).toBe('x'.repeat(120));
  });

  it('reads what GNU tar writes, and enforces the end-of-archive policy', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a'), 'content\n');
    await execa('tar', ['--format=gnu', '-cf', join(dir, 'gnu.tar'), '-C', dir, 'a']);
    const { readFile } = await import('node:fs/promises');
    const gnu = await readFile(join(dir, 'gnu.tar'));
    const [entry] = await readTarBuffer(gnu, 'gnu.tar', 'required');
    expect(entry?.entry.name).toBe('a');
    expect(entry?.content.toString()).toBe('content\n');
    await expect(readTarBuffer(gnu, 'gnu.tar', 'forbidden')).rejects.toThrow(/gnu\.tar: tar stream carries end-of-archive blocks/);
    const noEnd = encodeTarEntry({ ...H, name: 'x', size: 1 }, Buffer.from('x'));
    await expect(readTarBuffer(noEnd, 'c.tar', 'required')).rejects.toThrow(/no end-of-archive blocks/);
    await expect(readTarBuffer(noEnd.subarray(0, 700), 'c.tar', 'optional')).rejects.toThrow(/c\.tar: tar stream ends/);
    const corrupt = Buffer.from(noEnd);
    corrupt[10] = 0x41;
    await expect(readTarBuffer(corrupt, 'c.tar', 'optional')).rejects.toThrow(/header checksum mismatch/);
    const trailing = Buffer.concat([noEnd, TAR_END_OF_ARCHIVE, Buffer.from('junk'.padEnd(512, '\0'))]);
    await expect(readTarBuffer(trailing, 'c.tar', 'optional')).rejects.toThrow(/data after the tar end-of-archive marker/);
  });
});
