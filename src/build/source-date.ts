// SOURCE_DATE_EPOCH: the one timestamp every output uses, so builds are reproducible.
import { execa } from 'execa';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../errors.ts';

/**
 * Order: the SOURCE_DATE_EPOCH variable, then --build-date, then the newest commit time of the git repository
 * holding the recipe, then 0.
 */
export async function resolveSourceDateEpoch(env: NodeJS.ProcessEnv, buildDate: string | undefined, recipeFile: string): Promise<number> {
  const fromEnv = env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && fromEnv !== '') return parseEpoch(fromEnv, 'SOURCE_DATE_EPOCH');
  if (buildDate !== undefined) return parseEpoch(buildDate, '--build-date');
  return (await gitCommitTime(dirname(resolve(recipeFile)))) ?? 0;
}

/** Commit time of HEAD of the repository containing `dir`; undefined outside a repository or without git. */
export async function gitCommitTime(dir: string): Promise<number | undefined> {
  const r = await execa('git', ['-C', dir, 'log', '-1', '--format=%ct'], { reject: false, timeout: 10_000 }).catch(() => undefined);
  const text = r?.exitCode === 0 ? String(r.stdout).trim() : '';
  return /^\d+$/.test(text) ? Number.parseInt(text, 10) : undefined;
}

/** Seconds since the epoch, or an ISO 8601 date/time. */
export function parseEpoch(text: string, where: string): number {
  if (/^\d+$/.test(text)) return Number.parseInt(text, 10);
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const ms = Date.parse(text.length === 10 ? `${text}T00:00:00Z` : text);
    if (!Number.isNaN(ms) && ms >= 0) return Math.floor(ms / 1000);
  }
  throw new UsageError(`${where}: "${text}" is neither seconds since 1970 nor an ISO 8601 date`);
}
