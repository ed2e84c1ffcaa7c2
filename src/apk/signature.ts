// The signature stream in front of a package or index: a gzip'd tar (end blocks cut) of `.SIGN.<alg>.<key>`
// entries, each holding a raw RSA PKCS#1 v1.5 signature over the bytes that follow the stream (the
// compressed control stream of a package; the whole unsigned tar.gz of an index).
import { createVerify, sign, verify, type KeyObject } from 'node:crypto';
import { PackageFormatError } from '../errors.ts';
import { gzipMember } from './gzip.ts';
import type { SigningKey } from './keys.ts';
import { encodeTarEntry, type TarBufferEntry } from './tar.ts';

export type SignatureAlgorithm = 'RSA' | 'RSA256' | 'RSA512';

export interface ApkSignature {
  algorithm: SignatureAlgorithm;
  keyName: string;
  signature: Buffer;
}

const DIGEST: Record<SignatureAlgorithm, string> = { RSA: 'sha1', RSA256: 'sha256', RSA512: 'sha512' };

export const SIGNATURE_PREFIX = '.SIGN.';

export function parseSignatureEntryName(name: string): { algorithm: SignatureAlgorithm; keyName: string } | undefined {
  const m = /^\.SIGN\.(RSA|RSA256|RSA512)\.(.+)$/.exec(name);
  if (!m || !m[1] || !m[2] || m[2].includes('/')) return undefined;
  return { algorithm: m[1] as SignatureAlgorithm, keyName: m[2] };
}

/** The signature stream (one gzip member) signing `signedBytes` with RSA-SHA256. */
export function buildSignatureStream(key: SigningKey, signedBytes: Buffer, mtime: number): Buffer {
  const signature = sign('sha256', signedBytes, key.privateKey);
  const entry = encodeTarEntry(
    {
      name: `${SIGNATURE_PREFIX}RSA256.${key.keyName}`,
      type: 'file',
      mode: 0o644,
      size: signature.length,
      mtime,
      uid: 0,
      gid: 0,
      uname: 'root',
      gname: 'root',
    },
    signature,
  );
  return gzipMember(entry);
}

/** Signatures from the entries of a signature stream; any other entry there is a format error. */
export function signaturesFromEntries(entries: TarBufferEntry[], where: string): ApkSignature[] {
  return entries.map(({ entry, content }) => {
    const parsed = parseSignatureEntryName(entry.name);
    if (!parsed || entry.type !== 'file') {
      throw new PackageFormatError(`${where}: unexpected entry ${entry.name} in the signature stream`);
    }
    return { ...parsed, signature: content };
  });
}

export interface VerifiedSignature {
  keyName: string;
  algorithm: SignatureAlgorithm;
}

/**
 * apk's rule: the first signature made with a trusted key decides. None trusted (or none at all) is
 * UNTRUSTED; a trusted key whose signature does not match is a BAD signature.
 */
export function verifySignatures(
  signatures: ApkSignature[],
  signedBytes: Buffer,
  keyring: ReadonlyMap<string, KeyObject>,
  where: string,
): VerifiedSignature {
  return checkTrusted(signatures, keyring, where, (trusted, key) => verify(DIGEST[trusted.algorithm], signedBytes, key, trusted.signature));
}

/** verifySignatures over bytes read as a stream (a v2.0 package without datahash signs control + data). */
export async function verifySignaturesOver(
  signatures: ApkSignature[],
  signedChunks: AsyncIterable<Buffer>,
  keyring: ReadonlyMap<string, KeyObject>,
  where: string,
): Promise<VerifiedSignature> {
  const chosen = checkTrusted(signatures, keyring, where, () => true);
  const trusted = signatures.find((s) => s.keyName === chosen.keyName) as ApkSignature;
  const verifier = createVerify(DIGEST[trusted.algorithm]);
  for await (const chunk of signedChunks) verifier.update(chunk);
  const key = keyring.get(trusted.keyName) as KeyObject;
  return checkTrusted([trusted], keyring, where, () => verifier.verify(key, trusted.signature));
}

function checkTrusted(
  signatures: ApkSignature[],
  keyring: ReadonlyMap<string, KeyObject>,
  where: string,
  matches: (trusted: ApkSignature, key: KeyObject) => boolean,
): VerifiedSignature {
  if (signatures.length === 0) throw new PackageFormatError(`${where}: UNTRUSTED signature: not signed`);
  const trusted = signatures.find((s) => keyring.has(s.keyName));
  if (!trusted) {
    const names = signatures.map((s) => s.keyName).join(', ');
    throw new PackageFormatError(`${where}: UNTRUSTED signature: signed by ${names}, which is not a trusted key`);
  }
  const key = keyring.get(trusted.keyName);
  let ok = false;
  try {
    ok = key !== undefined && matches(trusted, key);
  } catch {
    ok = false;
  }
  if (!ok) throw new PackageFormatError(`${where}: BAD signature (key ${trusted.keyName})`);
  return { keyName: trusted.keyName, algorithm: trusted.algorithm };
}
