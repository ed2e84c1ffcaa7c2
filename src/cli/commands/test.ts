import type { Command } from 'commander';
import { chooseRenderer } from '../../build/progress.ts';
import { resolveSourceDateEpoch } from '../../build/source-date.ts';
import { reportTestResults, testRecipe } from '../../build/test.ts';
import { withInterrupt } from '../interrupt.ts';
import { addSandboxOptions, ROOTS_HELP, type SandboxFlags, sandboxSetup } from '../sandbox-options.ts';

interface TestFlags extends SandboxFlags {
  outDir: string;
  interactive: boolean;
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
    .option('-i, --interactive', 'when a test step fails, open a shell in its sandbox on this terminal (exit it to end the test)', false)
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
      const sourceDateEpoch = await resolveSourceDateEpoch(process.env, flags.buildDate, recipe);
      const results = await withInterrupt((signal) =>
        testRecipe({
          ...sandboxSetup(flags, signal),
          recipeFile: recipe,
          targets,
          arch: flags.arch,
          runner: flags.runner,
          outDir: flags.outDir,
          pipelineDirs: flags.pipelineDir,
          buildOptions: flags.buildOption,
          sourceDir: flags.sourceDir,
          cacheDir: flags.cacheDir,
          workspaceDir: flags.workspaceDir,
          sourceDateEpoch,
          debug: flags.debug,
          keepWorkspace: flags.keepWorkspace,
          progress,
          signal,
          interactive: flags.interactive,
        }),
      );
      reportTestResults(results, (line) => progress.note(line));
    });
}
