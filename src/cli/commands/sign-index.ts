// `builder sign-index --signing-key KEY APKINDEX.tar.gz`: melange's `sign-index`. Signs an index in place:
// a signature stream in front of the unchanged DESCRIPTION/APKINDEX stream (its bytes are what is signed).
// An index that is signed already is left alone unless --force, which replaces its signature.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { writeBufferAtomic } from '../../apk/atomic.ts';
import { inflateGzipMember } from '../../apk/gzip.ts';
import { readApkIndex } from '../../apk/index.ts';
import { loadSigningKey } from '../../apk/keys.ts';
import { buildSignatureStream } from '../../apk/signature.ts';
import { PackageFormatError } from '../../errors.ts';

export interface SignIndexResult {
  signed: boolean;
  /** Who signed it before. */
  previous: string[];
}

export async function signIndex(path: string, keyFile: string, force: boolean): Promise<SignIndexResult> {
  const key = await loadSigningKey(keyFile);
  const index = await readApkIndex(path); // validates the whole file first
  const previous = index.signatures.map((s) => s.keyName);
  if (previous.length > 0 && !force) return { signed: false, previous };
  const file = await readFile(path);
  let bodyStart = 0;
  if (previous.length > 0) {
    const first = inflateGzipMember(file, 0, `${path}: signature stream`, file.length * 1032);
    if (!first) throw new PackageFormatError(`${path}: truncated signature stream`);
    bodyStart = first.end;
  }
  const body = file.subarray(bodyStart);
  // The same mtime a builder-written index uses, so signing is reproducible.
  const mtime = index.entries.reduce((m, e) => Math.max(m, e.builddate ?? 0), 0);
  await writeBufferAtomic(path, Buffer.concat([buildSignatureStream(key, body, mtime), body]), { mode: 0o644, overwrite: true, sync: true });
  return { signed: true, previous };
}

export function registerSignIndexCommand(program: Command): void {
  program
    .command('sign-index')
    .description('sign an APKINDEX.tar.gz in place')
    .argument('<index>', 'the APKINDEX.tar.gz to sign')
    .option('--signing-key <file>', 'RSA private key to sign with', 'melange.rsa')
    .option('-f, --force', 'replace the signature of an index that is signed already', false)
    .addHelpText(
      'after',
      `
Examples:
  builder sign-index --signing-key=key.rsa packages/x86_64/APKINDEX.tar.gz
  builder sign-index --signing-key=new.rsa packages/x86_64/APKINDEX.tar.gz --force`,
    )
    .action(async (path: string, flags: { signingKey: string; force: boolean }) => {
      const result = await signIndex(path, flags.signingKey, flags.force);
      if (!result.signed) console.log(`${path}: already signed by ${result.previous.join(', ')}; left as it is (--force replaces the signature)`);
      else console.log(`${path}: signed with ${flags.signingKey}${result.previous.length ? ` (replacing ${result.previous.join(', ')})` : ''}`);
    });
}
