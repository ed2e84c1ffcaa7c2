// Commands over packages and indexes: keygen, sign, index, verify.
import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import { collect } from '../options.ts';
import type { Command } from 'commander';
import { indexEntryFromApk, updateApkIndex } from '../../apk/index.ts';
import { mapLimit } from '../../apk/sca/limit.ts';
import { generateSigningKey, loadKeyring, loadSigningKey } from '../../apk/keys.ts';
import { readApk } from '../../apk/reader.ts';
import { resignApk } from '../../apk/resign.ts';
import { verifyApk, verifyApkIndex } from '../../apk/verify.ts';
import { errorJson, printJson } from '../json-output.ts';
import { BuilderError, errorMessage, PackageFormatError } from '../../errors.ts';

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

export function registerApkCommands(program: Command): void {
  program
    .command('keygen')
    .description('generate an RSA signing key pair: <name>.rsa (private, 0600) and <name>.rsa.pub')
    .argument('[name]', 'path and base name of the key files', 'builder')
    .option('--bits <n>', 'RSA modulus size', '4096')
    .option('--force', 'replace existing key files', false)
    .option('--keep-existing', 'do nothing (and succeed) when both key files already exist', false)
    .action(async (name: string, flags: { bits: string; force: boolean; keepExisting: boolean }) => {
      const bits = Number.parseInt(flags.bits, 10);
      const base = name.endsWith('.rsa') ? name : `${name}.rsa`;
      if (flags.keepExisting && (await exists(base)) && (await exists(`${base}.pub`))) {
        console.log(`keeping existing ${base} and ${base}.pub`);
        return;
      }
      const key = await generateSigningKey(base, { bits, force: flags.force });
      console.log(`wrote ${key.privatePath} and ${key.publicPath} (key name ${key.keyName})`);
    });

  program
    .command('sign')
    .description('sign packages in place (replacing any existing signature)')
    .requiredOption('-k, --signing-key <file>', 'RSA private key')
    .argument('<apk...>', 'packages to sign')
    .action(async (apks: string[], flags: { signingKey: string }) => {
      const key = await loadSigningKey(flags.signingKey);
      for (const apk of apks) {
        await resignApk(apk, key);
        console.log(`signed ${apk} with ${key.keyName}`);
      }
    });

  program
    .command('index')
    .description('add packages to an APKINDEX.tar.gz, merging with the one already there')
    .requiredOption('-o, --output <file>', 'index file, e.g. packages/x86_64/APKINDEX.tar.gz')
    .option('--signing-key <file>', 'RSA private key to sign the index with')
    .option('--keyring <key>', 'also require each package to be signed by this key (repeatable)', collect, [] as string[])
    .argument('<apk...>', 'packages to add')
    .action(async (apks: string[], flags: { output: string; signingKey?: string; keyring: string[] }) => {
      const key = flags.signingKey ? await loadSigningKey(flags.signingKey) : undefined;
      const keyring = flags.keyring.length > 0 ? await loadKeyring(flags.keyring) : undefined;
      // Every package is checked before the index is touched: one damaged package leaves it as it was.
      // Reads overlap (a full index is mostly small-file I/O); the entries keep the command line's order.
      const entries = await mapLimit(apks, 16, async (apk) => {
        if (keyring) await verifyApk(apk, keyring);
        const pkg = await readApk(apk);
        if (pkg.info.datahash && pkg.info.datahash !== pkg.dataHash) {
          throw new PackageFormatError(`${apk}: BAD signature: datahash ${pkg.info.datahash} does not match the data (${pkg.dataHash})`);
        }
        return indexEntryFromApk(pkg);
      });
      const result = await updateApkIndex({ path: resolve(flags.output), add: entries, signingKey: key });
      console.log(`${result.path}: ${result.entries.length} packages`);
    });

  program
    .command('verify')
    .description('verify packages and indexes: signature, datahash, structure and safe paths')
    .option('--keyring <key>', 'trusted public key, or a directory of *.pub files (repeatable)', collect, [] as string[])
    .argument('<file...>', '.apk packages or APKINDEX.tar.gz files')
    .option('--json', 'print {command, ok, files: [{file, ok, kind, ...}]} instead of text (docs/json.md)', false)
    .action(async (files: string[], flags: { keyring: string[]; json: boolean }) => {
      const results: Record<string, unknown>[] = [];
      const verifyAll = async (): Promise<void> => {
        const keyring = await loadKeyring(flags.keyring);
        for (const file of files) {
          try {
            if (/APKINDEX[^/]*\.tar\.gz$/.test(file)) {
              const s = await verifyApkIndex(file, keyring);
              results.push({ file, ok: true, kind: 'index', packages: s.entries.length, keyName: s.keyName, algorithm: s.algorithm });
              if (!flags.json) console.log(`${file}: OK (index of ${s.entries.length} packages, signed by ${s.keyName})`);
            } else {
              const s = await verifyApk(file, keyring);
              results.push({ file, ok: true, kind: 'package', package: s.info.pkgname, version: s.info.pkgver, entries: s.entries, keyName: s.keyName, algorithm: s.algorithm, checksum: s.checksum, dataHash: s.dataHash });
              if (!flags.json) console.log(`${file}: OK (${s.info.pkgname}-${s.info.pkgver}, ${s.entries} entries, signed by ${s.keyName})`);
            }
          } catch (err) {
            if (!(err instanceof BuilderError)) throw err;
            results.push({ file, ok: false, error: errorJson(err) });
            process.stderr.write(`${errorMessage(err)}\n`);
          }
        }
      };
      if (flags.json) {
        await printJson('verify', async () => {
          await verifyAll();
          return { ok: results.every((r) => r.ok === true), files: results };
        });
      } else {
        await verifyAll();
      }
      const failed = results.filter((r) => r.ok !== true).length;
      if (failed > 0) throw new BuilderError(`${failed} of ${files.length} files failed verification`);
    });
}
