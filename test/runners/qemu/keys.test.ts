// Per-run keys in the formats the tools read: checked with ssh2's own parser and with OpenSSH's ssh-keygen.
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { utils } from 'ssh2';
import { describe, expect, it } from 'vitest';
import { authorizedKeyLine, dropbearHostKey, generateEd25519, generateRunKeys, opensshPrivateKey, publicKeyBlob, wipeKeys } from '../../../src/runners/qemu/keys.ts';

describe('run keys', () => {
  it('writes OpenSSH private keys that ssh2 and ssh-keygen read, with the matching public key', async () => {
    const key = generateEd25519();
    const pem = opensshPrivateKey(key, 'test');
    const parsed = utils.parseKey(pem);
    if (parsed instanceof Error) throw parsed;
    const one = Array.isArray(parsed) ? parsed[0] : parsed;
    expect(one.type).toBe('ssh-ed25519');
    expect(one.getPublicSSH().equals(publicKeyBlob(key))).toBe(true);
    // The private half really is that key: a signature verifies with the public one.
    const sig = one.sign(Buffer.from('data'));
    expect(sig instanceof Error).toBe(false);
    expect(one.verify(Buffer.from('data'), sig as Buffer)).toBe(true);

    const dir = await mkdtemp(path.join(tmpdir(), 'builder-keys-'));
    try {
      const file = path.join(dir, 'id');
      await writeFile(file, pem, { mode: 0o600 });
      const derived = await execa('ssh-keygen', ['-y', '-f', file]);
      expect(derived.stdout.split(' ').slice(0, 2).join(' ')).toBe(authorizedKeyLine(key, 'x').split(' ').slice(0, 2).join(' '));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('writes authorized_keys lines with options, and dropbear\'s host key format', () => {
    const key = generateEd25519();
    const line = authorizedKeyLine(key, 'builder-build', 'command="/x",no-pty');
    expect(line).toBe(`command="/x",no-pty ssh-ed25519 ${publicKeyBlob(key).toString('base64')} builder-build`);
    const host = dropbearHostKey(key);
    // string "ssh-ed25519", string (32-byte seed || 32-byte public key)
    expect(host.readUInt32BE(0)).toBe(11);
    expect(host.subarray(4, 15).toString()).toBe('ssh-ed25519');
    expect(host.readUInt32BE(15)).toBe(64);
    expect(host.subarray(19, 51).equals(key.seed)).toBe(true);
    expect(host.subarray(51, 83).equals(key.publicKey)).toBe(true);
    expect(host.length).toBe(83);
  });

  it('makes three distinct keys per run and wipes their private halves', () => {
    const keys = generateRunKeys();
    const publics = new Set([keys.host, keys.control, keys.build].map((k) => k.publicKey.toString('hex')));
    expect(publics.size).toBe(3);
    wipeKeys(keys);
    for (const k of [keys.host, keys.control, keys.build]) expect(k.seed.equals(Buffer.alloc(32))).toBe(true);
  });
});
