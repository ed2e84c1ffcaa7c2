// The plan as JSON text with a stable key order (keys sorted at every level), so that the output of
// `builder compile` can be diffed and kept as a golden file.
import type { BuildPlan } from './plan.ts';

export function planToJson(plan: BuildPlan): string {
  return `${JSON.stringify(sortKeys(plan), null, 2)}\n`;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[key];
    if (v !== undefined) out[key] = sortKeys(v);
  }
  return out;
}
