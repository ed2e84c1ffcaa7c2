// `builder compile recipe.yaml`: the build plan a recipe compiles to, as JSON with a stable key order.
import type { Command } from 'commander';
import { loadRecipe } from '../../config/load.ts';
import { hostArch } from '../../pipeline/arch.ts';
import { compileRecipe } from '../../pipeline/compile.ts';
import type { BuildPlan } from '../../pipeline/plan.ts';
import { planToJson } from '../../pipeline/plan-json.ts';
import { collect } from '../options.ts';

export interface CompileFlags {
  arch: string;
  pipelineDir: string[];
  buildOption: string[];
}

/** Load and compile one recipe file. */
export async function compileRecipeFile(file: string, flags: CompileFlags): Promise<BuildPlan> {
  return compileRecipe(await loadRecipe(file), {
    arch: flags.arch,
    pipelineDirs: flags.pipelineDir,
    buildOptions: flags.buildOption,
  });
}

/** What `builder compile` prints for a recipe. */
export async function compileOutput(file: string, flags: CompileFlags): Promise<string> {
  return planToJson(await compileRecipeFile(file, flags));
}

export function registerCompileCommand(program: Command): void {
  program
    .command('compile')
    .description('print the build plan a recipe compiles to (JSON): the steps of every package, sources, environment')
    .argument('<recipe>', 'recipe file')
    .option('--arch <arch>', 'target architecture', hostArch())
    .option('--pipeline-dir <dir>', 'directory of pipeline definitions searched before the built-ins (repeatable)', collect, [])
    .option('--build-option <name>', 'enable one of the recipe\'s `options` (repeatable)', collect, [])
    .addHelpText(
      'after',
      `
The plan is what \`builder build\` runs: substitutions applied, \`uses\` expanded into shell steps, \`if\`
conditions and \`range\` subpackages resolved. Keys are sorted, so the output is stable and diffable.`,
    )
    .action(async (recipe: string, flags: CompileFlags) => {
      process.stdout.write(await compileOutput(recipe, flags));
    });
}
