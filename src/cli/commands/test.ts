import type { Command } from 'commander';
import { chooseRenderer } from '../../build/progress.ts';
import { resolveSourceDateEpoch } from '../../build/source-date.ts';
import { type PackageTestResult, reportTestResults, testRecipe } from '../../build/test.ts';
import { collectList } from '../options.ts';
import { withInterrupt } from '../interrupt.ts';
import { quietRenderer } from '../quiet-renderer.ts';
import { addSandboxOptions, checkArchRunnable, resolveRunFlags, ROOTS_HELP, type SandboxFlags, sandboxSetup } from '../sandbox-options.ts';

interface TestFlags extends SandboxFlags {
  outDir: string;
  testOption: string[];
  testPackageAppend: string[];
}

export function registerTestCommand(program: Command): void {
  addSandboxOptions(
    program
      .command('test')
      .description("run a recipe's test pipelines against its built packages, each package in a fresh root")
      .argument('<recipe>', 'recipe file')
      .argument('[package...]', 'packages to test, NAME or NAME=VERSION (default: every package with a test)'),
  )
    .option('--out-dir <dir>', 'repository holding the packages under test (as given to `builder build`)', './packages')
    .option('--test-option <names>', "enable the recipe's `options` (comma-separated, repeatable; same as --build-option)", collectList, [])
    .option('--test-package-append <pkgs>', 'packages added to every test environment (comma-separated, repeatable; same as --package-append)', collectList, [])
    .addHelpText(
      'after',
      `
Each tested package gets a root made from its test environment (test.environment.contents) plus the package
itself, installed from --out-dir's repository: pass --keyring-append KEY.pub for a signed repository, or
--ignore-signatures. The test root usually needs a base (e.g. --base debian:bookworm) for /bin/sh.
${ROOTS_HELP}`,
    )
    .action(async (recipe: string, targets: string[], flags: TestFlags) => {
      const progress = chooseRenderer();
      const run = await resolveRunFlags(flags, (l) => progress.note(l));
      // --log-level warn/error: only problems are printed.
      const say = run.verbose ? (line: string) => progress.note(line) : () => undefined;
      for (const arch of run.archs) checkArchRunnable(arch);
      const sourceDateEpoch = await resolveSourceDateEpoch(process.env, flags.buildDate, recipe);
      const results: PackageTestResult[] = [];
      await withInterrupt(async (interrupt) => {
        // --timeout bounds the whole run, like Ctrl-C would.
        const seconds = run.limits.timeout;
        const signal = seconds ? AbortSignal.any([interrupt, AbortSignal.timeout(seconds * 1000)]) : interrupt;
        for (const arch of run.archs) {
          const setup = await sandboxSetup({ ...flags, packageAppend: [...flags.packageAppend, ...flags.testPackageAppend] }, signal);
          results.push(
            ...(await testRecipe({
              ...setup,
              recipeFile: recipe,
              targets,
              arch,
              runner: flags.runner,
              outDir: flags.outDir,
              pipelineDirs: run.pipelineDirs,
              buildOptions: [...flags.buildOption, ...flags.testOption],
              vars: run.vars,
              limits: run.limits,
              sourceDir: flags.sourceDir,
              cacheDir: flags.cacheDir,
              workspaceDir: flags.workspaceDir,
              sourceDateEpoch,
              debug: flags.debug,
              keepWorkspace: run.keepWorkspace,
              env: run.env,
              progress: run.verbose ? progress : quietRenderer(),
              signal,
              interactive: flags.interactive,
            })),
          );
        }
      });
      reportTestResults(results, say);
    });
}
