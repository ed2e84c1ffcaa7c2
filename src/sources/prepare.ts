// The "Fetch sources" phase of a build: every host-side source action of a plan, in order, before the sandbox
// starts. Afterwards the sandbox finds each result under /var/cache/melange/<cacheName>.
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { BuildPlan, SourcePlan } from '../pipeline/plan.ts';
import { fetchToCache } from './fetch.ts';
import { checkoutToCache } from './git.ts';

export interface PrepareSourcesOptions {
  /** The host cache dir, the one bound at /var/cache/melange. */
  cacheDir: string;
  /** What relative local paths and repositories are resolved against (default: the recipe's folder). */
  baseDir?: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface PreparedSource {
  source: SourcePlan;
  /** Host path of the result. */
  path: string;
  cached: boolean;
  /** fetch: SHA-256 of the file when known without reading it again (always for a download, verified or not). */
  sha256?: string;
  /** git: the commit checked out (after cherry-picks). */
  commit?: string;
}

/** Run the plan's `sources` (fetches and git checkouts) on the host, one after another. */
export async function prepareSources(
  plan: Pick<BuildPlan, 'recipeFile' | 'sources'>,
  options: PrepareSourcesOptions,
): Promise<PreparedSource[]> {
  const cacheDir = resolve(options.cacheDir);
  const baseDir = resolve(options.baseDir ?? dirname(resolve(plan.recipeFile)));
  await mkdir(cacheDir, { recursive: true });
  const done: PreparedSource[] = [];
  for (const source of plan.sources) {
    const common = { cacheDir, baseDir, log: options.log, signal: options.signal };
    if (source.kind === 'fetch') {
      const result = await fetchToCache(source, common);
      done.push({ source, path: result.path, cached: result.cached, ...(result.sha256 ? { sha256: result.sha256 } : {}) });
    } else {
      const result = await checkoutToCache(source, common);
      done.push({ source, path: result.path, cached: result.cached, commit: result.commit });
    }
  }
  return done;
}
