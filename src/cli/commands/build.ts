import { appendFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { BuildFailedError, build, type BuildResult } from '../../build/build.ts';
import { chooseRenderer } from '../../build/progress.ts';
import { buildReproducibly } from '../../build/reproducible.ts';
import { resolveSourceDateEpoch } from '../../build/source-date.ts';
import { stepResourceLines } from '../../build/steps.ts';
import { LINTERS } from '../../lint/linters.ts';
import { networkPolicyFromFlags } from '../../observe/policy.ts';
import { OBSERVABILITY_HELP } from '../../observe/stage.ts';
import type { ProgressRenderer } from '../../build/progress.ts';
import { UsageError } from '../../errors.ts';
import { isRepositoryBuild } from '../../repository/recipes.ts';
import { addBuildOptions, type BuildFlags, refuseUnsupported } from '../build-options.ts';
import { withInterrupt } from '../interrupt.ts';
import { quietRenderer } from '../quiet-renderer.ts';
import { addRepositoryOptions, buildRepository, REPOSITORY_HELP, type RepositoryFlags } from '../repository-build.ts';
import { addSandboxOptions, checkArchRunnable, resolveRunFlags, ROOTS_HELP, type SandboxFlags, sandboxSetup } from '../sandbox-options.ts';

export function registerBuildCommand(program: Command): void {
  addRepositoryOptions(addBuildOptions(addSandboxOptions(program.command('build').description('build the packages of one or more recipes').argument('[recipe...]', 'recipe files, or a directory of recipes', ['melange.yaml']))))
    .option(
      '--resume [workspace]',
      'continue a failed build in its kept workspace, skipping the steps that completed unchanged (the workspace path; default: found from the recipe and --out-dir; auto: build from scratch when none can be resumed)',
    )
    .addHelpText(
      'after',
      `${ROOTS_HELP}
${REPOSITORY_HELP}

${OBSERVABILITY_HELP}

Environment: SOURCE_DATE_EPOCH sets every timestamp in the packages; CI=true prints plain progress lines.`,
    )
    .action(async (recipes: string[], flags: BuildFlags & RepositoryFlags & { resume?: string | true }) => {
      refuseUnsupported(flags);
      if (flags.resume !== undefined && flags.verifyReproducible) throw new UsageError('--resume and --verify-reproducible exclude each other (a reproducibility check builds from scratch, twice)');
      const network = networkPolicyFromFlags(flags);
      const progress = chooseRenderer();
      const run = await resolveRunFlags(flags, (l) => progress.note(l));
      // --log-level warn/error: only problems are printed.
      const say = run.verbose ? (line: string) => progress.note(line) : () => undefined;
      for (const arch of run.archs) checkArchRunnable(arch);
      const lintRequire = flags.failOnLintWarning ? [...flags.lintRequire, ...LINTERS.map((l) => l.name).filter((n) => !flags.lintWarn.includes(n))] : flags.lintRequire;
      await withInterrupt(async (signal) => {
        // One set of build options for a single recipe and for each recipe of a repository build.
        const optionsFor = async (recipe: string, arch: string, renderer: ProgressRenderer, sandbox: SandboxFlags) => ({
          ...(await sandboxSetup(sandbox, signal)),
          arch,
          runner: flags.runner,
          outDir: flags.outDir,
          signingKey: flags.signingKey,
          sourceDir: flags.sourceDir,
          cacheDir: flags.cacheDir,
          workspaceDir: flags.workspaceDir,
          sourceDateEpoch: await resolveSourceDateEpoch(process.env, flags.buildDate, recipe),
          debug: flags.debug,
          generateIndex: flags.generateIndex,
          keepWorkspace: run.keepWorkspace,
          env: run.env,
          limits: run.limits,
          emptyWorkspace: flags.emptyWorkspace,
          stripOriginName: flags.stripOriginName,
          ...(flags.gitCommit ? { gitCommit: flags.gitCommit } : {}),
          recipe: { ...(flags.gitRepoUrl ? { repositoryUrl: flags.gitRepoUrl } : {}), license: flags.license },
          generateProvenance: flags.generateProvenance,
          pipelineDirs: run.pipelineDirs,
          buildOptions: flags.buildOption,
          vars: run.vars,
          namespace: flags.namespace,
          lintRequire,
          lintWarn: flags.lintWarn,
          persistLintResults: flags.persistLintResults,
          network,
          progress: run.verbose ? renderer : quietRenderer(),
          signal,
          interactive: flags.interactive,
        });
        // A directory, or more than one recipe: a repository build, in dependency order, per architecture.
        if (await isRepositoryBuild(recipes)) {
          if (flags.resume !== undefined) throw new UsageError('--resume takes one recipe, not a repository build');
          for (const arch of run.archs) {
            await buildRepository(recipes, flags, { arch, pipelineDirs: run.pipelineDirs }, (recipe, per, sandbox) => optionsFor(recipe, arch, per.progress, sandbox), signal);
          }
          return;
        }
        for (const recipe of recipes) {
          for (const arch of run.archs) {
            try {
              const result = await (flags.verifyReproducible ? buildReproducibly : build)({
                ...(await optionsFor(recipe, arch, progress, flags)),
                recipeFile: recipe,
                ...(flags.resume !== undefined ? { resume: flags.resume } : {}),
              });
              await writeLogs(flags, result);
              for (const p of result.packages) say(`built ${p.path}`);
              if (result.indexPath) say(`index ${result.indexPath}`);
              for (const line of result.observability?.summary ?? []) say(line);
              for (const line of stepResourceLines(result.steps ?? [])) say(line);
              if (result.workspace) say(`workspace kept at ${result.workspace}`);
            } catch (err) {
              if (err instanceof BuildFailedError && err.workspace) {
                err.details.push(`workspace kept at ${err.workspace} (full log: ${err.workspace}/build.log)`);
              }
              throw err;
            }
          }
        }
      });
    });
}

/** --create-build-log and --dependency-log, as melange writes them. */
async function writeLogs(flags: BuildFlags, result: BuildResult): Promise<void> {
  if (flags.createBuildLog) {
    const lines = result.plan.packages
      .filter((p) => result.packages.some((b) => b.name === p.name))
      .map((p) => `${result.plan.arch}|${result.plan.packages[0]!.name}|${p.name}|${p.version}-r${p.epoch}\n`);
    await appendFile('packages.log', lines.join(''));
  }
  if (flags.dependencyLog) {
    const env = result.plan.environment;
    const log = {
      recipe: { gitRepoUrl: flags.gitRepoUrl ?? 'https://unknown/unknown/unknown', gitCommit: flags.gitCommit ?? 'unknown', license: flags.license },
      arch: result.plan.arch,
      repositories: [...env.repositories, ...flags.repositoryAppend],
      keyring: [...env.keyring, ...flags.keyringAppend],
      packages: [...env.packages, ...flags.packageAppend],
    };
    await writeFile(flags.dependencyLog, `${JSON.stringify(log, null, 2)}\n`);
  }
}
