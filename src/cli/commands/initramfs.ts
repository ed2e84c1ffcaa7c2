// `builder build-initramfs`: builds (or finds in the cache) the base initramfs the QEMU runner boots, and
// optionally writes a copy to a file. `build --runner qemu` does the same on first use.
import { type Command, Option } from 'commander';
import {
  APK_BUSYBOX_NAMES,
  APK_SSH_SERVER_NAMES,
  INITRAMFS_SOURCES,
  type InitramfsSource,
  writeBaseInitramfs,
} from '../../initramfs/base.ts';
import { withInterrupt } from '../interrupt.ts';
import { defaultArtifactDir, ensureSealedBaseInitramfs } from '../../runners/qemu/seal.ts';

interface InitramfsFlags {
  from: InitramfsSource;
  package: string[];
  repository: string[];
  keyring: string[];
  ignoreSignatures?: boolean;
  output?: string;
  vmArtifactDir: string;
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
    .option('--repository <dir|url>', '--from apk: APK repository holding <arch>/APKINDEX.tar.gz, searched in order (repeatable)', collect, [])
    .option('--keyring <key.pub>', '--from apk: trusted public key, or a directory of *.pub (repeatable)', collect, [])
    .option('--ignore-signatures', '--from apk: accept unsigned or untrusted indexes and packages')
    .option('-o, --output <file>', 'also write the archive to this file')
    .option('--vm-artifact-dir <dir>', 'sealed VM artifact store (the archive is kept under <dir>/initramfs/)', defaultArtifactDir())
    .addHelpText(
      'after',
      `
The archive is a gzip'd newc cpio holding a static busybox (with its applet links), dropbear with exactly the
shared libraries it needs (found from its ELF DT_NEEDED entries), builder's init and guest programs, and the
files of each --package (documentation left out) with the libraries their programs need.

--from debian (default) downloads busybox-static, dropbear-bin and their dependencies with apt-get download
and unpacks them with dpkg-deb -x (no root, nothing installed).

--from apk resolves and installs the packages with builder's own APK installer (indexes and packages checked
against --keyring, no scriptlets run) from the --repository list. busybox is the first of
${APK_BUSYBOX_NAMES.join(', ')} that a package is or provides (it must be statically linked); the SSH
server the first of ${APK_SSH_SERVER_NAMES.join(', ')}. --package also takes apk constraints (name>=1.2-r0, cmd:NAME).
  builder build-initramfs --from apk --repository ./packages --keyring builder.rsa.pub --package strace

The result is cached by the digest of its inputs (the source's exact packages — for APK their names, versions
and checksums and the digests of the indexes, for Debian apt's package lists — and builder's guest programs),
so running this again with the same inputs is instant. QEMU_BASE_INITRAMFS or build --initramfs FILE makes the
QEMU runner use a given archive instead.`,
    )
    .action(async (flags: InitramfsFlags) => {
      await withInterrupt(async (signal) => {
        const options = {
          cacheDir: flags.vmArtifactDir,
          from: flags.from,
          packages: flags.package,
          repositories: flags.repository,
          keyring: flags.keyring,
          ignoreSignatures: flags.ignoreSignatures ?? false,
          log: (line: string) => process.stderr.write(`${line}\n`),
          signal,
        };
        const sealed = await ensureSealedBaseInitramfs(options);
        const result = flags.output ? { ...(await writeBaseInitramfs(flags.output, options)), cached: sealed.cached } : sealed;
        process.stderr.write(`${result.cached ? 'cached' : 'built'}: base initramfs ${result.digest} (${(result.bytes / 1e6).toFixed(2)} MB)\n`);
        process.stdout.write(`${result.path}\n`);
      });
    });
}
