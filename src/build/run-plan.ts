// The plan a run (`build`, `test`) executes: the recipe compiled with the command line's --arch,
// --pipeline-dirs, --build-option and --vars-file, then `--timeout`, `--cpu`, `--memory`, `--disk`: as in
// melange (pkg/build applies the options over the parsed configuration), a limit given on the command line
// wins over the recipe's package.timeout and package.resources, and the plan says what the run was given.
import { loadRecipe } from '../config/load.ts';
import { compileRecipe } from '../pipeline/compile.ts';
import type { BuildPlan } from '../pipeline/plan.ts';

export interface RunLimits {
  /** Seconds; absent (or `--timeout 0`) leaves package.timeout. */
  timeout?: number;
  cpu?: string;
  memory?: string;
  disk?: string;
}

export function applyRunLimits(plan: BuildPlan, limits: RunLimits | undefined): BuildPlan {
  if (!limits) return plan;
  const resources = { ...plan.resources };
  for (const key of ['cpu', 'memory', 'disk'] as const) {
    const value = limits[key];
    if (value !== undefined) resources[key] = value;
  }
  return { ...plan, resources, ...(limits.timeout ? { timeout: limits.timeout } : {}) };
}

/** What of a run's options shapes its plan (`build`, `test`). */
export interface RunPlanOptions {
  recipeFile: string;
  arch: string;
  pipelineDirs?: string[];
  buildOptions?: string[];
  vars?: Record<string, string>;
  limits?: RunLimits;
}

/** The recipe compiled for a run: --arch, --pipeline-dirs, --build-option, --vars-file, then the limits. */
export async function compileRunPlan(o: RunPlanOptions): Promise<BuildPlan> {
  const plan = compileRecipe(await loadRecipe(o.recipeFile), { arch: o.arch, pipelineDirs: o.pipelineDirs, buildOptions: o.buildOptions, vars: o.vars });
  return applyRunLimits(plan, o.limits);
}
