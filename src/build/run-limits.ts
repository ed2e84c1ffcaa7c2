// `--timeout`, `--cpu`, `--memory`, `--disk`: as in melange (pkg/build: the options are applied over the parsed
// configuration), a limit given on the command line wins over the recipe's package.timeout and
// package.resources; the plan then says what the run was given.
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
