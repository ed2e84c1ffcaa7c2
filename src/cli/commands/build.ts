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
import { addBuildOptions, type BuildFlags, refuseUnsupported } from '../build-options.ts';
import { withInterrupt } from '../interrupt.ts';
import { quietRenderer } from '../quiet-renderer.ts';
import { addSandboxOptions, checkArchRunnable, resolveRunFlags, ROOTS_HELP, sandboxSetup } from '../sandbox-options.ts';

export function registerBuildCommand(program: Command): void {
  addBuildOptions(addSandboxOptions(program.command('build').description('build the packages of one or more recipes').argument('[recipe...]', 'recipe files', ['melange.yaml'])))
    .addHelpText(
      'after',
      `${ROOTS_HELP}

${OBSERVABILITY_HELP}

Environment: SOURCE_DATE_EPOCH sets every timestamp in the packages; CI=true prints plain progress lines.`,
    )
    .action(async (recipes: string[], flags: BuildFlags) => {
      refuseUnsupported(flags);
      const network = networkPolicyFromFlags(flags);
      const progress = chooseRenderer();
      const run = await resolveRunFlags(flags, (l) => progress.note(l));
      // --log-level warn/error: only problems are printed.
      const say = run.verbose ? (line: string) => progress.note(line) : () => undefined;
      for (const arch of run.archs) checkArchRunnable(arch);
      const lintRequire = flags.failOnLintWarning ? [...flags.lintRequire, ...LINTERS.map((l) => l.name).filter((n) => !flags.lintWarn.includes(n))] : flags.lintRequire;
      await withInterrupt(async (signal) => {
        for (const recipe of recipes) {
          const sourceDateEpoch = await resolveSourceDateEpoch(process.env, flags.buildDate, recipe);
          for (const arch of run.archs) {
            try {
              const result = await (flags.verifyReproducible ? buildReproducibly : build)({
                ...(await sandboxSetup(flags, signal)),
                recipeFile: recipe,
                arch,
                runner: flags.runner,
                outDir: flags.outDir,
                signingKey: flags.signingKey,
                sourceDir: flags.sourceDir,
                cacheDir: flags.cacheDir,
                workspaceDir: flags.workspaceDir,
                sourceDateEpoch,
                debug: flags.debug,
                generateIndex: flags.generateIndex,
                keepWorkspace: run.keepWorkspace,
                env: run.env,
                ...(run.timeoutSeconds ? { timeout: run.timeoutSeconds } : {}),
                emptyWorkspace: flags.emptyWorkspace,
                stripOriginName: flags.stripOriginName,
                ...(flags.gitCommit ? { gitCommit: flags.gitCommit } : {}),
                pipelineDirs: run.pipelineDirs,
                buildOptions: flags.buildOption,
                namespace: flags.namespace,
                lintRequire,
                lintWarn: flags.lintWarn,
                persistLintResults: flags.persistLintResults,
                network,
                progress: run.verbose ? progress : quietRenderer(),
                signal,
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
