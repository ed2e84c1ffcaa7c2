// The newc cpio writer and reader: byte layout, streaming from disk, concatenated archives, corrupt input.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { CpioFormatError, CpioWriter, listCpio, readCpio } from '../../src/initramfs/cpio.ts';

async function archive(write: (w: CpioWriter) => Promise<void>): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const w = new CpioWriter(out);
  await write(w);
  await w.finish();
  out.end();
  return Buffer.concat(chunks);
}

async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('CpioWriter', () => {
  it('writes the newc layout the kernel expects, byte for byte', async () => {
    const data = await archive(async (w) => {
      await w.file('a', 'xyz', { mode: 0o644, uid: 1, gid: 2, mtime: 0x10 });
    });
    const header = data.subarray(0, 110).toString('latin1');
    expect(header).toBe(
      '070701' + '00000001' + '000081a4' + '00000001' + '00000002' + '00000001' + '00000010' + '00000003' +
        '00000000' + '00000000' + '00000000' + '00000000' + '00000002' + '00000000',
    );
    // name "a\0" then padding to 4 (110 + 2 = 112), data "xyz" + 1 byte of padding.
    expect(data.subarray(110, 112).toString('latin1')).toBe('a\0');
    expect(data.subarray(112, 116).toString('latin1')).toBe('xyz\0');
    const trailer = data.subarray(116).toString('latin1');
    expect(trailer.startsWith('070701')).toBe(true);
    expect(trailer).toContain('TRAILER!!!\0');
    expect(data.length % 4).toBe(0);
  });

  it('round-trips every entry kind, with files streamed from disk', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'builder-cpio-'));
    dirs.push(dir);
    const big = randomBytes(300_001);
    await writeFile(path.join(dir, 'big'), big);
    const data = await archive(async (w) => {
      await w.directory('usr', { mode: 0o755 });
      await w.directory('usr/bin', { mode: 0o755 });
      await w.fileFrom('usr/bin/big', path.join(dir, 'big'), big.length, { mode: 0o755, mtime: 1_700_000_000 });
      await w.symlink('usr/bin/alias', 'big');
      await w.device('dev/console', 'char', 5, 1, { mode: 0o600 });
      await w.directory('tmp', { mode: 0o1777 });
      await w.file('empty', '', { mode: 0o600, uid: 1000, gid: 100 });
    });
    const seen: Record<string, { type: string; mode: number; data?: Buffer; link?: string; rdev?: number[]; uid?: number }> = {};
    // Tiny chunks exercise headers and names split across reads.
    for await (const e of readCpio(chunked(data, 7))) {
      seen[e.name] = { type: e.type, mode: e.mode, uid: e.uid, link: e.linkTarget, rdev: [e.rdevMajor, e.rdevMinor], data: e.type === 'file' ? await e.buffer() : undefined };
    }
    expect(Object.keys(seen)).toEqual(['usr', 'usr/bin', 'usr/bin/big', 'usr/bin/alias', 'dev/console', 'tmp', 'empty']);
    expect(seen['usr/bin/big']?.data?.equals(big)).toBe(true);
    expect(seen['usr/bin/big']?.mode).toBe(0o755);
    expect(seen['usr/bin/alias']).toMatchObject({ type: 'symlink', link: 'big' });
    expect(seen['dev/console']).toMatchObject({ type: 'char', rdev: [5, 1], mode: 0o600 });
    expect(seen['tmp']?.mode).toBe(0o1777);
    expect(seen['empty']).toMatchObject({ type: 'file', uid: 1000 });
    expect(seen['empty']?.data?.length).toBe(0);
  });

  it('normalises names and refuses ".." and files that change size', async () => {
    const data = await archive(async (w) => w.file('./etc//passwd/', 'x', { mode: 0o644 }));
    expect((await listCpio(chunked(data, 64))).map((e) => e.name)).toEqual(['etc/passwd']);
    await expect(archive(async (w) => w.file('a/../../b', 'x', { mode: 0o644 }))).rejects.toThrow(/refusing path with "\.\."/);
    const dir = await mkdtemp(path.join(tmpdir(), 'builder-cpio-'));
    dirs.push(dir);
    await writeFile(path.join(dir, 'f'), 'four');
    await expect(archive(async (w) => w.fileFrom('f', path.join(dir, 'f'), 10, { mode: 0o644 }))).rejects.toThrow(/shrank/);
  });
});

describe('readCpio', () => {
  it('reads archives back to back, with zero padding between them, as the kernel does', async () => {
    const first = await archive(async (w) => w.file('etc/a', 'first', { mode: 0o644 }));
    const second = await archive(async (w) => w.file('etc/a', 'second', { mode: 0o600 }));
    const joined = Buffer.concat([first, Buffer.alloc(8), second]);
    const entries: [string, string][] = [];
    for await (const e of readCpio(chunked(joined, 13))) entries.push([e.name, (await e.buffer()).toString()]);
    expect(entries).toEqual([
      ['etc/a', 'first'],
      ['etc/a', 'second'],
    ]);
    const onlyFirst = await listCpio(chunked(joined, 100), { concatenated: false });
    expect(onlyFirst.length).toBe(1);
  });

  it('skips bodies the consumer does not read', async () => {
    const data = await archive(async (w) => {
      await w.file('one', randomBytes(1001), { mode: 0o644 });
      await w.file('two', 'tail', { mode: 0o644 });
    });
    const names: string[] = [];
    let last = '';
    for await (const e of readCpio(chunked(data, 50))) {
      names.push(e.name);
      if (e.name === 'two') last = (await e.buffer()).toString();
    }
    expect(names).toEqual(['one', 'two']);
    expect(last).toBe('tail');
  });

  it('reports corrupt input with its offset', async () => {
    const good = await archive(async (w) => w.file('f', 'data', { mode: 0o644 }));
    const badMagic = Buffer.from(good);
    badMagic.write('123456', 0, 'latin1');
    await expect(listCpio(chunked(badMagic, 64))).rejects.toThrow(/at byte 0: bad magic "123456"/);
    const badHex = Buffer.from(good);
    badHex.write('zz', 20, 'latin1');
    await expect(listCpio(chunked(badHex, 64))).rejects.toBeInstanceOf(CpioFormatError);
    // Header (110) + "f\0" (2) + "data" (4) = 116 bytes before the trailer.
    await expect(listCpio(chunked(good.subarray(0, 100), 64))).rejects.toThrow(/at byte 0: truncated header/);
    await expect(listCpio(chunked(good.subarray(0, 114), 64))).rejects.toThrow(/truncated file data/);
    await expect(listCpio(chunked(good.subarray(0, 120), 64))).rejects.toThrow(/at byte 116: truncated header/);
    await expect(listCpio(chunked(good.subarray(0, 116), 64))).rejects.toThrow(/missing TRAILER/);
    await expect(listCpio(chunked(Buffer.alloc(0), 64))).rejects.toThrow(/empty input/);
  });
});
