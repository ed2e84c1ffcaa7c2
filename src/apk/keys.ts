// RSA signing keys in apk's conventions: `<name>.rsa` (private, PEM) beside `<name>.rsa.pub` (public, PEM).
// A signature names its key by the public key's file name, which is what verifiers look up in their keys dir.
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { BuilderError, errorMessage } from '../errors.ts';
import { TargetExistsError, writeBufferAtomic } from './atomic.ts';

export const DEFAULT_RSA_BITS = 4096;
export const MIN_RSA_BITS = 2048;

export interface SigningKey {
  /** The public key's file name as verifiers know it: basename(private key path) + `.pub`. */
  keyName: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  path: string;
}

export interface GeneratedKey {
  privatePath: string;
  publicPath: string;
  keyName: string;
}

function generateRsa(bits: number): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    generateKeyPair('rsa', { modulusLength: bits, publicExponent: 0x10001 }, (err, publicKey, privateKey) =>
      err ? reject(err) : resolve({ privateKey, publicKey }),
    );
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Generates an RSA key pair: `privatePath` (PKCS#8 PEM, mode 0600) and `privatePath.pub` (SPKI PEM, 0644).
 * Refuses to replace an existing key unless `force`. `bits` exists for fast tests; the default is 4096.
 */
export async function generateSigningKey(
  privatePath: string,
  opts: { bits?: number; force?: boolean } = {},
): Promise<GeneratedKey> {
  const bits = opts.bits ?? DEFAULT_RSA_BITS;
  const force = opts.force ?? false;
  if (!Number.isInteger(bits) || bits < MIN_RSA_BITS) {
    throw new BuilderError(`RSA key size ${bits} is below the ${MIN_RSA_BITS}-bit minimum`);
  }
  const publicPath = `${privatePath}.pub`;
  if (!force) {
    for (const p of [privatePath, publicPath]) {
      if (await exists(p)) throw new BuilderError(`refusing to overwrite existing key ${p} (use --force to replace it)`);
    }
  }
  const { privateKey, publicKey } = await generateRsa(bits);
  const privatePem = Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const publicPem = Buffer.from(publicKey.export({ type: 'spki', format: 'pem' }));
  try {
    await writeBufferAtomic(privatePath, privatePem, { mode: 0o600, overwrite: force, sync: true });
    await writeBufferAtomic(publicPath, publicPem, { mode: 0o644, overwrite: force, sync: true });
  } catch (err) {
    if (err instanceof TargetExistsError) {
      throw new BuilderError(`refusing to overwrite existing key ${err.path} (use --force to replace it)`);
    }
    throw new BuilderError(`cannot write signing key ${privatePath}: ${errorMessage(err)}`, { cause: err });
  }
  return { privatePath, publicPath, keyName: basename(publicPath) };
}

function checkRsa(key: KeyObject, path: string): void {
  if (key.asymmetricKeyType !== 'rsa') {
    throw new BuilderError(`${path}: not an RSA key (apk signatures are RSA)`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw new BuilderError(`${path}: RSA key has ${bits} bits, below the ${MIN_RSA_BITS}-bit minimum`);
}

/** Loads a PEM private key (PKCS#1 or PKCS#8, unencrypted) for signing. */
export async function loadSigningKey(path: string): Promise<SigningKey> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (err) {
    throw new BuilderError(`cannot read signing key ${path}: ${errorMessage(err)}`, { cause: err });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new BuilderError(`${path} is not a usable private key (unencrypted PEM expected): ${errorMessage(err)}`, {
      cause: err,
    });
  }
  checkRsa(privateKey, path);
  return { keyName: `${basename(path)}.pub`, privateKey, publicKey: createPublicKey(privateKey), path };
}

async function loadPublicKey(path: string): Promise<KeyObject> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (err) {
    throw new BuilderError(`cannot read public key ${path}: ${errorMessage(err)}`, { cause: err });
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new BuilderError(`${path} is not a PEM public key: ${errorMessage(err)}`, { cause: err });
  }
  checkRsa(key, path);
  return key;
}

/**
 * Trusted public keys by key name (the file's basename, which signatures refer to). Each path is a public
 * key file or a directory whose `*.pub` files are all loaded. Two different keys under one name are an error.
 */
export async function loadKeyring(paths: string[]): Promise<Map<string, KeyObject>> {
  const keyring = new Map<string, KeyObject>();
  const add = async (file: string): Promise<void> => {
    const key = await loadPublicKey(file);
    const name = basename(file);
    const previous = keyring.get(name);
    if (previous && !previous.equals(key)) throw new BuilderError(`${file}: a different key named ${name} is already trusted`);
    keyring.set(name, key);
  };
  for (const path of paths) {
    let isDir: boolean;
    try {
      isDir = (await stat(path)).isDirectory();
    } catch (err) {
      throw new BuilderError(`cannot read keyring path ${path}: ${errorMessage(err)}`, { cause: err });
    }
    if (!isDir) {
      await add(path);
      continue;
    }
    const names = (await readdir(path)).filter((n) => n.endsWith('.pub')).sort();
    for (const name of names) {
      const file = join(path, name);
      if ((await stat(file)).isFile()) await add(file);
    }
  }
  return keyring;
}
