// `builder build-initramfs`: builds (or finds in the cache) the base initramfs the QEMU runner boots, and
// optionally writes a copy to a file. `build --runner qemu` does the same on first use.
import { type Command, Option } from 'commander';
import { ensureBaseInitramfs, INITRAMFS_SOURCES, type InitramfsSource, writeBaseInitramfs } from '../../initramfs/base.ts';
import { withInterrupt } from '../interrupt.ts';
import { defaultCacheDir } from '../sandbox-options.ts';

interface InitramfsFlags {
  from: InitramfsSource;
  package: string[];
  output?: string;
  cacheDir: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerInitramfsCommand(program: Command): void {
  program
    .command('build-initramfs')
    .description('build the base initramfs of the QEMU runner (busybox, dropbear, builder\'s init), cached by its inputs')
    .addOption(new Option('--from <source>', 'where the contents come from').choices([...INITRAMFS_SOURCES]).default('debian'))
    .option('--package <name>', 'extra package to add, with the libraries its programs need (repeatable)', collect, [])
    .option('-o, --output <file>', 'also write the archive to this file')
    .option('--cache-dir <dir>', 'builder cache (the archive is kept under <dir>/initramfs/)', defaultCacheDir())
    .addHelpText(
      'after',
      `
The archive is a gzip'd newc cpio. --from debian downloads Debian packages with apt-get download and unpacks
them with dpkg-deb -x (no root, nothing installed). The result is cached by the digest of its inputs (packages,
apt's package lists, builder's init program), so running this again with the same inputs is instant.
QEMU_BASE_INITRAMFS or build --initramfs FILE makes the QEMU runner use a given archive instead.`,
    )
    .action(async (flags: InitramfsFlags) => {
      await withInterrupt(async (signal) => {
        const options = {
          cacheDir: flags.cacheDir,
          from: flags.from,
          packages: flags.package,
          log: (line: string) => process.stderr.write(`${line}\n`),
          signal,
        };
        const result = flags.output ? await writeBaseInitramfs(flags.output, options) : await ensureBaseInitramfs(options);
        process.stderr.write(`${result.cached ? 'cached' : 'built'}: base initramfs ${result.digest} (${(result.bytes / 1e6).toFixed(2)} MB)\n`);
        process.stdout.write(`${result.path}\n`);
      });
    });
}
