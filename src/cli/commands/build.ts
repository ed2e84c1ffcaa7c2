import { homedir } from 'node:os';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { BuildFailedError, build } from '../../build/build.ts';
import { chooseRenderer } from '../../build/progress.ts';
import { buildReproducibly } from '../../build/reproducible.ts';
import { resolveSourceDateEpoch } from '../../build/source-date.ts';
import { defaultRootCacheDir } from '../../environment/root-provider.ts';
import { SelectingProvider } from '../../environment/select.ts';
import { hostArch } from '../../pipeline/arch.ts';
import { BubblewrapRunner } from '../../runners/bubblewrap.ts';
import { collectLinterList } from '../../lint/settings.ts';
import { withInterrupt } from '../interrupt.ts';
import { collect } from '../options.ts';

interface BuildFlags {
  runner: string;
  arch: string;
  outDir: string;
  signingKey?: string;
  sourceDir?: string;
  cacheDir: string;
  workspaceDir?: string;
  buildDate?: string;
  debug: boolean;
  generateIndex: boolean;
  keepWorkspace: boolean;
  namespace: string;
  lintRequire: string[];
  lintWarn: string[];
  persistLintResults: boolean;
  pipelineDir: string[];
  verifyReproducible: boolean;
  base?: string;
  repositoryAppend: string[];
  keyringAppend: string[];
  packageAppend: string[];
  apkCacheDir?: string;
  rootCacheDir?: string;
  ignoreSignatures: boolean;
  buildOption: string[];
}

export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'builder');
}

export function registerBuildCommand(program: Command): void {
  program
    .command('build')
    .description('build the packages of one or more recipes')
    .argument('[recipe...]', 'recipe files', ['melange.yaml'])
    .addOption(new Option('--runner <name>', 'sandbox to run steps in').choices(['bubblewrap', 'qemu', 'auto']).default('auto'))
    .option('--arch <arch>', 'target architecture', hostArch())
    .option('--out-dir <dir>', 'repository the packages and APKINDEX.tar.gz go to (under <dir>/<arch>/)', './packages')
    .option('--signing-key <file>', 'RSA private key to sign packages and the index with (see `builder keygen`)')
    .option('--pipeline-dir <dir>', 'directory of pipeline definitions searched before the built-ins (repeatable)', collect, [])
    .option('--build-option <name>', 'enable a recipe build option from `options` (repeatable)', collect, [])
    .option('--base <ref>', 'base of the build root: debian:SUITE[:PKG,...][@MIRROR], dir:PATH, oci:PATH or host')
    .option('--repository-append <repo>', 'APK repository (directory or URL) added to the recipe\'s (repeatable)', collect, [])
    .option('--keyring-append <key>', 'public key trusted for repositories (repeatable)', collect, [])
    .option('--package-append <pkg>', 'package added to the build environment (repeatable)', collect, [])
    .option('--ignore-signatures', 'accept unsigned or untrusted repository indexes and packages', false)
    .option('--apk-cache-dir <dir>', 'cache for downloaded packages and indexes (default: <root cache>/downloads)')
    .option('--root-cache-dir <dir>', 'cache of build roots', defaultRootCacheDir())
    .option('--source-dir <dir>', 'directory copied into the workspace (default: the recipe\'s folder)')
    .option('--cache-dir <dir>', 'cache mounted at /var/cache/melange', defaultCacheDir())
    .option('--workspace-dir <dir>', 'where the per-build temp workspace is created (default: the system temp dir)')
    .option('--build-date <date>', 'timestamp for every file, seconds or ISO 8601 (SOURCE_DATE_EPOCH wins; default: the recipe\'s git commit time, else 0)')
    .option('--debug', 'trace every shell command (set -x)', false)
    .option('--no-generate-index', 'do not update <out-dir>/<arch>/APKINDEX.tar.gz')
    .option('--verify-reproducible', 'build twice in fresh workspaces and fail, naming the first differing files, unless the packages are identical', false)
    .option('--keep-workspace', 'keep the workspace after a successful build (always kept on failure)', false)
    .option('--namespace <name>', 'distribution namespace for SBOM package URLs (pkg:apk/<namespace>/...)', 'unknown')
    .option('--lint-require <linters>', 'make these linters errors (comma-separated, repeatable)', collectLinterList, [])
    .option('--lint-warn <linters>', 'make these linters warnings (comma-separated, repeatable)', collectLinterList, [])
    .option('--persist-lint-results', 'write lint results as JSON next to the packages', false)
    .addHelpText(
      'after',
      `
Build roots: a hermetic root is made from what the recipe declares (environment.contents: a base such as
debian:bookworm:gcc,make in repositories or --base, plus APK repositories and packages) and cached by the
digest of its inputs. A recipe that declares neither builds in the host's /usr, /etc (read-only, NOT hermetic);
--base host asks for that explicitly. See docs/environments.md.

Network: steps have no network.

Environment: SOURCE_DATE_EPOCH sets every timestamp in the packages; CI=true prints plain progress lines.`,
    )
    .action(async (recipes: string[], flags: BuildFlags) => {
      const progress = chooseRenderer();
      await withInterrupt(async (signal) => {
        for (const recipe of recipes) {
          const sourceDateEpoch = await resolveSourceDateEpoch(process.env, flags.buildDate, recipe);
          try {
            const result = await (flags.verifyReproducible ? buildReproducibly : build)({
              recipeFile: recipe,
              arch: flags.arch,
              runner: flags.runner,
              runners: [new BubblewrapRunner({ debug: flags.debug })],
              environmentProvider: new SelectingProvider({ cacheDir: flags.rootCacheDir, apkCacheDir: flags.apkCacheDir, signal }),
              environment: {
                base: flags.base,
                repositoryAppend: flags.repositoryAppend,
                keyringAppend: flags.keyringAppend,
                packageAppend: flags.packageAppend,
                ignoreSignatures: flags.ignoreSignatures,
              },
              outDir: flags.outDir,
              signingKey: flags.signingKey,
              sourceDir: flags.sourceDir,
              cacheDir: flags.cacheDir,
              workspaceDir: flags.workspaceDir,
              sourceDateEpoch,
              debug: flags.debug,
              generateIndex: flags.generateIndex,
              keepWorkspace: flags.keepWorkspace,
              pipelineDirs: flags.pipelineDir,
              buildOptions: flags.buildOption,
              namespace: flags.namespace,
              lintRequire: flags.lintRequire,
              lintWarn: flags.lintWarn,
              persistLintResults: flags.persistLintResults,
              progress,
              signal,
            });
            for (const p of result.packages) progress.note(`built ${p.path}`);
            if (result.indexPath) progress.note(`index ${result.indexPath}`);
            if (result.workspace) progress.note(`workspace kept at ${result.workspace}`);
          } catch (err) {
            if (err instanceof BuildFailedError && err.workspace) {
              err.details.push(`workspace kept at ${err.workspace} (full log: ${err.workspace}/build.log)`);
            }
            throw err;
          }
        }
      });
    });
}
