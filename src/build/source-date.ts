// SOURCE_DATE_EPOCH: the one timestamp every output uses, so builds are reproducible.
import { UsageError } from '../errors.ts';

/** Order: the SOURCE_DATE_EPOCH variable, then --build-date, then 0. */
export function resolveSourceDateEpoch(env: NodeJS.ProcessEnv, buildDate: string | undefined): number {
  const fromEnv = env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && fromEnv !== '') return parseEpoch(fromEnv, 'SOURCE_DATE_EPOCH');
  if (buildDate !== undefined) return parseEpoch(buildDate, '--build-date');
  return 0;
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
