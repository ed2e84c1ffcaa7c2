import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BuilderError } from '../../src/errors.ts';
import { DEFAULT_RSA_BITS, generateSigningKey, loadKeyring, loadSigningKey } from '../../src/apk/keys.ts';
import { useTempDirs } from './helpers.ts';

const tempDir = useTempDirs();

describe('generateSigningKey', () => {
  it('writes a PKCS#8 private key (0600) and an SPKI public key (0644) that sign and verify', async () => {
    const dir = await tempDir();
    const priv = join(dir, 'builder.rsa');
    const gen = await generateSigningKey(priv, { bits: 2048 });
    expect(gen).toEqual({ privatePath: priv, publicPath: `${priv}.pub`, keyName: 'builder.rsa.pub' });
    expect((await stat(priv)).mode & 0o777).toBe(0o600);
    expect((await stat(`${priv}.pub`)).mode & 0o777).toBe(0o644);
    expect(await readFile(priv, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(await readFile(`${priv}.pub`, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    // No temp files left behind.
    expect((await readdir(dir)).sort()).toEqual(['builder.rsa', 'builder.rsa.pub']);

    const key = await loadSigningKey(priv);
    expect(key.keyName).toBe('builder.rsa.pub');
    expect(key.privateKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const ring = await loadKeyring([`${priv}.pub`]);
    const sig = sign('sha256', Buffer.from('data'), key.privateKey);
    expect(verify('sha256', Buffer.from('data'), ring.get('builder.rsa.pub')!, sig)).toBe(true);
  });

  it('defaults to 4096 bits', () => {
    expect(DEFAULT_RSA_BITS).toBe(4096);
  });

  it('refuses to overwrite an existing key unless forced', async () => {
    const dir = await tempDir();
    const priv = join(dir, 'k.rsa');
    await generateSigningKey(priv, { bits: 2048 });
    const before = await readFile(priv);
    await expect(generateSigningKey(priv, { bits: 2048 })).rejects.toThrow(/refusing to overwrite existing key .*k\.rsa/);
    expect((await readFile(priv)).equals(before)).toBe(true);
    // Only the public half existing is enough to refuse.
    const lonely = join(dir, 'lonely.rsa');
    await writeFile(`${lonely}.pub`, 'x');
    await expect(generateSigningKey(lonely, { bits: 2048 })).rejects.toThrow(/lonely\.rsa\.pub/);

    await generateSigningKey(priv, { bits: 2048, force: true });
    expect((await readFile(priv)).equals(before)).toBe(false);
    expect((await stat(priv)).mode & 0o777).toBe(0o600);
  });

  it('refuses keys below 2048 bits', async () => {
    const dir = await tempDir();
    await expect(generateSigningKey(join(dir, 'small.rsa'), { bits: 1024 })).rejects.toThrow(/below the 2048-bit minimum/);
  });
});

describe('loadSigningKey', () => {
  it('accepts a PKCS#1 private key too', async () => {
    const dir = await tempDir();
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(join(dir, 'p1.rsa'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
    expect((await loadSigningKey(join(dir, 'p1.rsa'))).keyName).toBe('p1.rsa.pub');
  });

  it.each([
    ['missing file', null, /cannot read signing key .*nope\.rsa/],
    ['not PEM', 'hello', /bad\.rsa is not a usable private key/],
    ['a public key', 'PUBLIC', /bad\.rsa is not a usable private key/],
    ['a 1024-bit key', 'SMALL', /bad\.rsa: RSA key has 1024 bits, below the 2048-bit minimum/],
    ['an EC key', 'EC', /bad\.rsa: not an RSA key/],
  ])('rejects %s with a BuilderError naming the file', async (_what, content, message) => {
    const dir = await tempDir();
    let path = join(dir, 'nope.rsa');
    if (content !== null) {
      path = join(dir, 'bad.rsa');
      let pem: string | Buffer = content;
      if (content === 'PUBLIC') pem = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' });
      if (content === 'SMALL') pem = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
      if (content === 'EC') pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
      await writeFile(path, pem);
    }
    const err = await loadSigningKey(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuilderError);
    expect((err as Error).message).toMatch(message);
  });
});

describe('loadKeyring', () => {
  it('loads single files and every *.pub in a directory, named by file basename', async () => {
    const dir = await tempDir();
    const keys = join(dir, 'keys');
    await mkdir(keys);
    await generateSigningKey(join(keys, 'a.rsa'), { bits: 2048 });
    await generateSigningKey(join(keys, 'b.rsa'), { bits: 2048 });
    await writeFile(join(keys, 'README'), 'not a key');
    await generateSigningKey(join(dir, 'c.rsa'), { bits: 2048 });
    const ring = await loadKeyring([keys, join(dir, 'c.rsa.pub')]);
    expect([...ring.keys()].sort()).toEqual(['a.rsa.pub', 'b.rsa.pub', 'c.rsa.pub']);
  });

  it('rejects unreadable paths, non-keys and two different keys under one name', async () => {
    const dir = await tempDir();
    await expect(loadKeyring([join(dir, 'missing.pub')])).rejects.toThrow(/cannot read keyring path .*missing\.pub/);
    await writeFile(join(dir, 'junk.pub'), 'junk');
    await expect(loadKeyring([join(dir, 'junk.pub')])).rejects.toThrow(/junk\.pub is not a PEM public key/);
    await mkdir(join(dir, 'one'));
    await mkdir(join(dir, 'two'));
    await generateSigningKey(join(dir, 'one', 'k.rsa'), { bits: 2048 });
    await generateSigningKey(join(dir, 'two', 'k.rsa'), { bits: 2048 });
    await expect(loadKeyring([join(dir, 'one'), join(dir, 'two')])).rejects.toThrow(/a different key named k\.rsa\.pub/);
  });
});
