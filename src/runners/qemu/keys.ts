// Per-run SSH keys, made with node:crypto (ed25519) and written in the three encodings the VM needs: dropbear's
// host key file, OpenSSH authorized_keys lines, and the OpenSSH private key format ssh2 reads. The host's public
// key is also kept as the SSH wire blob, which is what the client pins.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

export interface Ed25519Key {
  /** The 32-byte private seed. */
  seed: Buffer;
  /** The 32-byte public key. */
  publicKey: Buffer;
}

export interface RunKeys {
  /** The guest's SSH host key; only its public half is trusted by the client. */
  host: Ed25519Key;
  /** Unrestricted root login: the control channel. */
  control: Ed25519Key;
  /** Login forced into the build root as the build user: the build channel. */
  build: Ed25519Key;
}

const KEY_TYPE = 'ssh-ed25519';

export function generateEd25519(): Ed25519Key {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const priv = privateKey.export({ format: 'jwk' });
  const pub = publicKey.export({ format: 'jwk' });
  if (!priv.d || !pub.x) throw new Error('ed25519 key export returned no key material');
  return { seed: Buffer.from(priv.d, 'base64url'), publicKey: Buffer.from(pub.x, 'base64url') };
}

export function generateRunKeys(): RunKeys {
  return { host: generateEd25519(), control: generateEd25519(), build: generateEd25519() };
}

function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** The public key as it appears on the wire (and base64-encoded in authorized_keys). */
export function publicKeyBlob(key: Ed25519Key): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(key.publicKey)]);
}

/** One authorized_keys line, optionally with options such as a forced command. */
export function authorizedKeyLine(key: Ed25519Key, comment: string, options?: string): string {
  const line = `${KEY_TYPE} ${publicKeyBlob(key).toString('base64')} ${comment}`;
  return options ? `${options} ${line}` : line;
}

/** Dropbear's own host key file: string "ssh-ed25519", string (seed || public key). */
export function dropbearHostKey(key: Ed25519Key): Buffer {
  return Buffer.concat([sshString(KEY_TYPE), sshString(Buffer.concat([key.seed, key.publicKey]))]);
}

/** The unencrypted `openssh-key-v1` private key file, as ssh-keygen writes it. */
export function opensshPrivateKey(key: Ed25519Key, comment = ''): string {
  const check = randomBytes(4);
  const blob = publicKeyBlob(key);
  let section = Buffer.concat([
    check,
    check,
    sshString(KEY_TYPE),
    sshString(key.publicKey),
    sshString(Buffer.concat([key.seed, key.publicKey])),
    sshString(comment),
  ]);
  // Padded with 1, 2, 3... to the cipher block size (8 for "none").
  const pad = (8 - (section.length % 8)) % 8;
  section = Buffer.concat([section, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    uint32(1),
    sshString(blob),
    sshString(section),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** Overwrites the private halves in memory once a run is over. */
export function wipeKeys(keys: RunKeys): void {
  for (const k of [keys.host, keys.control, keys.build]) k.seed.fill(0);
}
