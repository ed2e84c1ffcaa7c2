import type { Command } from 'commander';
import { BuildFailedError, build } from '../../build/build.ts';
import { chooseRenderer } from '../../build/progress.ts';
import { buildReproducibly } from '../../build/reproducible.ts';
import { resolveSourceDateEpoch } from '../../build/source-date.ts';
import { collectLinterList } from '../../lint/settings.ts';
import { networkPolicyFromFlags } from '../../observe/policy.ts';
import { OBSERVABILITY_HELP } from '../../observe/stage.ts';
import { UsageError } from '../../errors.ts';
import { collect } from '../options.ts';
import { withInterrupt } from '../interrupt.ts';
import { addSandboxOptions, ROOTS_HELP, type SandboxFlags, sandboxSetup } from '../sandbox-options.ts';

interface BuildFlags extends SandboxFlags {
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
  resume?: string | true;
  interactive: boolean;
}

export function registerBuildCommand(program: Command): void {
  addSandboxOptions(program.command('build').description('build the packages of one or more recipes').argument('[recipe...]', 'recipe files', ['melange.yaml']))
    .option('--out-dir <dir>', 'repository the packages and APKINDEX.tar.gz go to (under <dir>/<arch>/)', './packages')
    .option('--signing-key <file>', 'RSA private key to sign packages and the index with (see `builder keygen`)')
    .option('--no-generate-index', 'do not update <out-dir>/<arch>/APKINDEX.tar.gz')
    .option('--verify-reproducible', 'build twice in fresh workspaces and fail, naming the first differing files, unless the packages are identical', false)
    .option('--namespace <name>', 'distribution namespace for SBOM package URLs (pkg:apk/<namespace>/...)', 'unknown')
    .option('--lint-require <linters>', 'make these linters errors (comma-separated, repeatable)', collectLinterList, [])
    .option('--lint-warn <linters>', 'make these linters warnings (comma-separated, repeatable)', collectLinterList, [])
    .option('--persist-lint-results', 'write lint results as JSON next to the packages', false)
    .option('--network', 'give the steps network access (none by default)', false)
    .option('--resume [workspace]', 'continue a failed build in its kept workspace, skipping the steps that completed unchanged (the workspace path; default: found from the recipe and --out-dir; auto: build from scratch when none can be resumed)')
    .option('-i, --interactive', 'when a step fails, open a shell in its sandbox on this terminal (exit it to end the build)', false)
    .option('--network-allow <host:port>', 'allow the network, but fail the build if it connected anywhere else (repeatable; qemu runner)', collect, [])
    .addHelpText(
      'after',
      `${ROOTS_HELP}

${OBSERVABILITY_HELP}

Environment: SOURCE_DATE_EPOCH sets every timestamp in the packages; CI=true prints plain progress lines.`,
    )
    .action(async (recipes: string[], flags: BuildFlags) => {
      const network = networkPolicyFromFlags(flags);
      if (flags.resume !== undefined && flags.verifyReproducible) throw new UsageError('--resume and --verify-reproducible exclude each other (a reproducibility check builds from scratch, twice)');
      if (flags.resume !== undefined && recipes.length > 1) throw new UsageError('--resume takes one recipe');
      const progress = chooseRenderer();
      await withInterrupt(async (signal) => {
        for (const recipe of recipes) {
          const sourceDateEpoch = await resolveSourceDateEpoch(process.env, flags.buildDate, recipe);
          try {
            const result = await (flags.verifyReproducible ? buildReproducibly : build)({
              ...sandboxSetup(flags, signal),
              recipeFile: recipe,
              arch: flags.arch,
              runner: flags.runner,
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
              network,
              progress,
              signal,
              interactive: flags.interactive,
              ...(flags.resume !== undefined ? { resume: flags.resume } : {}),
            });
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
