// `builder export-rootfs`: a build root (a recipe's environment, a base, or a cached root by digest) out as
// an ext4, EROFS or cpio image under a content-addressed name.
import { Option, type Command } from 'commander';
import { RootCache } from '../../environment/cache.ts';
import { defaultRootCacheDir, RootProvider } from '../../environment/root-provider.ts';
import { UsageError } from '../../errors.ts';
import { exportRootfs, ROOTFS_FORMATS, type RootfsFormat } from '../../export/rootfs.ts';
import { rootSpec } from '../../build/steps.ts';
import { hostArch } from '../../pipeline/arch.ts';
import { withInterrupt } from '../interrupt.ts';
import { collect } from '../options.ts';
import { compileRecipeFile } from './compile.ts';

interface ExportFlags {
  format: RootfsFormat;
  gzip: boolean;
  outputDir: string;
  postExport?: string;
  root?: string;
  base?: string;
  arch: string;
  rootCacheDir: string;
  apkCacheDir?: string;
  pipelineDir: string[];
  buildOption: string[];
  json: boolean;
}

/** The cached root named by a full digest or a unique prefix of one (as `builder cache ls` prints). */
async function cachedRoot(cache: RootCache, digest: string): Promise<string> {
  if (!/^[0-9a-f]{4,64}$/.test(digest)) throw new UsageError(`--root: "${digest}" is not a digest (at least 4 hex digits, from \`builder cache ls\`)`);
  const matches = (await cache.list()).filter((r) => r.digest.startsWith(digest));
  if (matches.length === 0) throw new UsageError(`--root: no cached root ${digest} in ${cache.dir}`);
  if (matches.length > 1) throw new UsageError(`--root: ${digest} names ${matches.length} roots (${matches.map((m) => m.digest.slice(0, 12)).join(', ')}); give more digits`);
  const root = await cache.get(matches[0]!.digest);
  if (!root) throw new UsageError(`--root: root ${digest} vanished from ${cache.dir}`);
  return root.rootfs;
}

export function registerExportRootfsCommand(program: Command): void {
  program
    .command('export-rootfs')
    .description('write a build root (a recipe\'s environment, a base such as an OCI image, or a cached root) as an ext4, EROFS or cpio image')
    .argument('[recipe]', "recipe whose environment is exported (made first when it is not cached)")
    .addOption(new Option('--format <format>', 'image format').choices([...ROOTFS_FORMATS]).default('ext4'))
    .option('--gzip', 'cpio: gzip the archive', false)
    .option('-o, --output-dir <dir>', 'where the image is written as rootfs-<sha256:16>.<format>', '.')
    .option('--post-export <cmd>', 'shell command run in a copy of the tree before the image is made ($ROOTFS is the copy)')
    .option('--root <digest>', 'a cached root by digest or unique prefix (see builder cache ls)')
    .option('--base <ref>', 'export a base alone: oci:REGISTRY/REPO:TAG, oci:PATH, debian:SUITE[:PKG,...], dir:PATH; with a recipe, replaces its base')
    .option('--arch <arch>', 'target architecture', hostArch())
    .option('--root-cache-dir <dir>', 'cache of build roots', defaultRootCacheDir())
    .option('--apk-cache-dir <dir>', 'cache for downloaded packages and indexes (default: <root cache>/downloads)')
    .option('--pipeline-dir <dir>', 'directory of pipeline definitions searched before the built-ins (repeatable)', collect, [])
    .option('--build-option <name>', "enable one of the recipe's `options` (repeatable)", collect, [])
    .option('--json', 'print the result as JSON', false)
    .addHelpText('after', '\nExactly one source: a recipe, --root, or --base. The image is complete under its final name or absent.\nSee docs/export-rootfs.md.')
    .action(async (recipe: string | undefined, flags: ExportFlags) => {
      const sources = [recipe !== undefined, flags.root !== undefined, flags.base !== undefined && recipe === undefined].filter(Boolean).length;
      if (sources !== 1) throw new UsageError('export-rootfs: give exactly one of a recipe, --root DIGEST or --base REF');
      if (flags.gzip && flags.format !== 'cpio') throw new UsageError('--gzip: only for --format cpio');
      const log = (line: string): void => void process.stderr.write(`${line}\n`);
      const result = await withInterrupt(async (signal) => {
        const provider = new RootProvider({ cacheDir: flags.rootCacheDir, ...(flags.apkCacheDir ? { apkCacheDir: flags.apkCacheDir } : {}), signal });
        let tree: string;
        if (flags.root !== undefined) {
          tree = await cachedRoot(provider.cache, flags.root);
        } else {
          const declared = recipe !== undefined
            ? (await compileRecipeFile(recipe, { arch: flags.arch, pipelineDir: flags.pipelineDir, buildOption: flags.buildOption })).environment
            : { repositories: [], keyring: [], packages: [] };
          const root = await provider.prepare(rootSpec(declared, { base: flags.base }, flags.arch), log);
          tree = root.directory!;
        }
        return exportRootfs({ tree, format: flags.format, gzip: flags.gzip, outputDir: flags.outputDir, ...(flags.postExport !== undefined ? { postExport: flags.postExport } : {}), log, signal });
      });
      process.stdout.write(flags.json ? `${JSON.stringify(result, null, 2)}\n` : `${result.path}\n`);
    });
}
