// `builder compile recipe.yaml`: the build plan a recipe compiles to, as JSON with a stable key order.
import type { Command } from 'commander';
import { applyRunLimits, type RunLimits } from '../../build/run-plan.ts';
import { loadRecipe } from '../../config/load.ts';
import { UsageError } from '../../errors.ts';
import { compileRecipe } from '../../pipeline/compile.ts';
import type { BuildPlan } from '../../pipeline/plan.ts';
import { planToJson } from '../../pipeline/plan-json.ts';
import { addBuildOptions, type BuildFlags, refuseUnsupported } from '../build-options.ts';
import { readEnvFiles } from '../env-file.ts';
import { readVarsFile } from '../vars-file.ts';
import { addSandboxOptions, recipeArchs, runLimits } from '../sandbox-options.ts';

export interface CompileFlags {
  arch: string;
  pipelineDir: string[];
  buildOption: string[];
  /** `--vars-file` variables, over the recipe's vars. */
  vars?: Record<string, string>;
  /** `--timeout`, `--cpu`, `--memory`, `--disk`: over the recipe's. */
  limits?: RunLimits;
  /** `--env-file` variables, under the recipe's environment. */
  env?: Record<string, string>;
}

/** Load and compile one recipe file. */
export async function compileRecipeFile(file: string, flags: CompileFlags): Promise<BuildPlan> {
  const plan = applyRunLimits(
    compileRecipe(await loadRecipe(file), {
      arch: flags.arch,
      pipelineDirs: flags.pipelineDir,
      buildOptions: flags.buildOption,
      vars: flags.vars,
    }),
    flags.limits,
  );
  if (flags.env) plan.environment.env = { ...flags.env, ...plan.environment.env };
  return plan;
}

/** What `builder compile` prints for a recipe. */
export async function compileOutput(file: string, flags: CompileFlags): Promise<string> {
  return planToJson(await compileRecipeFile(file, flags));
}

export function registerCompileCommand(program: Command): void {
  // melange's compile takes every flag of its build; those that shape the plan have their effect here.
  addBuildOptions(
    addSandboxOptions(
      program
        .command('compile')
        .description('print the build plan a recipe compiles to (JSON): the steps of every package, sources, environment')
        .argument('<recipe>', 'recipe file'),
    ),
  )
    .addHelpText(
      'after',
      `
The plan is what \`builder build\` runs: substitutions applied, \`uses\` expanded into shell steps, \`if\`
conditions and \`range\` subpackages resolved, --env-file variables under the recipe's environment. Keys are
sorted, so the output is stable and diffable.`,
    )
    .action(async (recipe: string, flags: BuildFlags) => {
      refuseUnsupported(flags);
      const archs = recipeArchs(flags);
      if (archs.length > 1) throw new UsageError(`--arch: compile takes one architecture (got ${archs.join(', ')})`);
      const env = await readEnvFiles(flags.envFile);
      const vars = flags.varsFile === undefined ? undefined : await readVarsFile(flags.varsFile);
      process.stdout.write(
        await compileOutput(recipe, {
          arch: archs[0]!,
          pipelineDir: [...flags.pipelineDirs, ...flags.pipelineDir],
          buildOption: flags.buildOption,
          ...(Object.keys(env).length > 0 ? { env } : {}),
          ...(vars ? { vars } : {}),
          limits: runLimits(flags),
        }),
      );
    });
}
