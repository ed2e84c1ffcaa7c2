import type { Command } from 'commander';
import { BuildFailedError, build } from '../../build/build.ts';
import { chooseRenderer } from '../../build/progress.ts';
import { buildReproducibly } from '../../build/reproducible.ts';
import { resolveSourceDateEpoch } from '../../build/source-date.ts';
import { collectLinterList } from '../../lint/settings.ts';
import { networkPolicyFromFlags } from '../../observe/policy.ts';
import { OBSERVABILITY_HELP } from '../../observe/stage.ts';
import { collect } from '../options.ts';
import { isRepositoryBuild } from '../../repository/recipes.ts';
import { withInterrupt } from '../interrupt.ts';
import { addSandboxOptions, ROOTS_HELP, type SandboxFlags, sandboxSetup } from '../sandbox-options.ts';
import { addRepositoryOptions, buildRepository, REPOSITORY_HELP, type RepositoryFlags } from '../repository-build.ts';
import type { ProgressRenderer } from '../../build/progress.ts';

interface BuildFlags extends SandboxFlags, RepositoryFlags {
  outDir: string;
  signingKey?: string;
  generateIndex: boolean;
  verifyReproducible: boolean;
  namespace: string;
  lintRequire: string[];
  lintWarn: string[];
  persistLintResults: boolean;
  network: boolean;
  networkAllow: string[];
}

export function registerBuildCommand(program: Command): void {
  addRepositoryOptions(addSandboxOptions(program.command('build').description('build the packages of one or more recipes').argument('[recipe...]', 'recipe files, or a directory of recipes', ['melange.yaml'])))
    .option('--out-dir <dir>', 'repository the packages and APKINDEX.tar.gz go to (under <dir>/<arch>/)', './packages')
    .option('--signing-key <file>', 'RSA private key to sign packages and the index with (see `builder keygen`)')
    .option('--no-generate-index', 'do not update <out-dir>/<arch>/APKINDEX.tar.gz')
    .option('--verify-reproducible', 'build twice in fresh workspaces and fail, naming the first differing files, unless the packages are identical', false)
    .option('--namespace <name>', 'distribution namespace for SBOM package URLs (pkg:apk/<namespace>/...)', 'unknown')
    .option('--lint-require <linters>', 'make these linters errors (comma-separated, repeatable)', collectLinterList, [])
    .option('--lint-warn <linters>', 'make these linters warnings (comma-separated, repeatable)', collectLinterList, [])
    .option('--persist-lint-results', 'write lint results as JSON next to the packages', false)
    .option('--network', 'give the steps network access (none by default)', false)
    .option('--network-allow <host:port>', 'allow the network, but fail the build if it connected anywhere else (repeatable; qemu runner)', collect, [])
    .addHelpText(
      'after',
      `${ROOTS_HELP}
${REPOSITORY_HELP}

${OBSERVABILITY_HELP}

Environment: SOURCE_DATE_EPOCH sets every timestamp in the packages; CI=true prints plain progress lines.`,
    )
    .action(async (recipes: string[], flags: BuildFlags) => {
      const network = networkPolicyFromFlags(flags);
      const progress = chooseRenderer();
      await withInterrupt(async (signal) => {
        const optionsFor = async (recipe: string, progress: ProgressRenderer, sandbox: SandboxFlags) => ({
          ...sandboxSetup(sandbox, signal),
          arch: flags.arch,
          runner: flags.runner,
          outDir: flags.outDir,
          signingKey: flags.signingKey,
          sourceDir: flags.sourceDir,
          cacheDir: flags.cacheDir,
          workspaceDir: flags.workspaceDir,
          sourceDateEpoch: await resolveSourceDateEpoch(process.env, flags.buildDate, recipe),
          debug: flags.debug,
          generateIndex: flags.generateIndex,
          keepWorkspace: flags.keepWorkspace,
          pipelineDirs: flags.pipelineDir,
          buildOptions: flags.buildOption,
          namespace: flags.namespace,
          lintRequire: flags.lintRequire,
          lintWarn: flags.lintWarn,
          persistLintResults: flags.persistLintResults,
          network,
          progress,
          signal,
        });
        // A directory, or more than one recipe: a repository build, in dependency order.
        if (await isRepositoryBuild(recipes)) {
          await buildRepository(recipes, flags, (recipe, per, sandbox) => optionsFor(recipe, per.progress, sandbox), signal);
          return;
        }
        for (const recipe of recipes) {
          try {
            const result = await (flags.verifyReproducible ? buildReproducibly : build)({ ...(await optionsFor(recipe, progress, flags)), recipeFile: recipe });
            for (const p of result.packages) progress.note(`built ${p.path}`);
            if (result.indexPath) progress.note(`index ${result.indexPath}`);
            for (const line of result.observability?.summary ?? []) progress.note(line);
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
