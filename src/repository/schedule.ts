// The local scheduler: runs the graph's recipes in dependency order, up to `jobs` at once, each through the
// one `build()`. A recipe whose every package is already in the out dir's index is skipped (unless forced,
// or asked to rebuild after a dependency was rebuilt); a failure skips the recipes that depend on it while
// the others go on. Each build's root gets the out dir's repository appended, so a dependency built here is
// installed from there.
import { access } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { readApkIndex } from '../apk/index.ts';
import { type BuildOptions, type BuildResult, build } from '../build/build.ts';
import type { ProgressRenderer } from '../build/progress.ts';
import { BuilderError, errorMessage } from '../errors.ts';
import { isArchTargeted } from '../pipeline/plan.ts';
import type { RecipeGraph, RecipeNode } from './graph.ts';

export type RecipeStatus = 'built' | 'up-to-date' | 'failed' | 'skipped' | 'not-for-arch';

export interface RecipeOutcome {
  recipe: string;
  file: string;
  status: RecipeStatus;
  dependsOn: string[];
  /** `name-version-rEPOCH` of the recipe's packages. */
  packages: string[];
  /** ISO 8601, for recipes that ran. */
  started?: string;
  finished?: string;
  error?: string;
  /** For `skipped`: the failed recipes it depends on (directly or not). */
  because?: string[];
}

export interface RepositorySummary {
  started: string;
  finished: string;
  jobs: number;
  recipes: RecipeOutcome[];
}

/** What one build is given beyond its recipe; made per build (each has its own runner and root provider). */
export interface PerBuild {
  progress: ProgressRenderer;
  /** The CPUs this build may use: the host's split between the concurrent builds. */
  cpus: number;
}

export interface ScheduleOptions {
  graph: RecipeGraph;
  jobs: number;
  force: boolean;
  rebuildDependents: boolean;
  outDir: string;
  arch: string;
  /** The options of one build, without the recipe. */
  buildOptions: (node: RecipeNode, per: PerBuild) => Promise<Omit<BuildOptions, 'recipeFile'>>;
  /** A progress renderer for the build of `node`, and how to close it. */
  progress: (node: RecipeNode) => { renderer: ProgressRenderer; done: (outcome: RecipeOutcome) => void };
  signal?: AbortSignal;
  /** Replaceable for tests of the ordering alone; the real one is `build()`. */
  run?: (options: BuildOptions) => Promise<BuildResult>;
}

/** `--jobs`: a positive integer or `auto` (the host's cores). */
export function parseJobs(text: string): number {
  if (text === 'auto') return availableParallelism();
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new BuilderError(`--jobs: "${text}" is not a positive integer or "auto"`);
  return n;
}

/** What the out dir's index holds: `name-version` of packages whose file is there too, and every name provided. */
async function outDirContents(outDir: string, arch: string): Promise<{ packages: Set<string>; names: Set<string> }> {
  const archDir = join(resolve(outDir), arch);
  const index = await readApkIndex(join(archDir, 'APKINDEX.tar.gz')).catch(() => undefined);
  const packages = new Set<string>();
  const names = new Set<string>();
  for (const e of index?.entries ?? []) {
    // The index says it is there; the file must be too (a half-cleaned out dir is not up to date).
    if (await access(join(archDir, `${e.pkgname}-${e.pkgver}.apk`)).then(() => true, () => false)) packages.add(`${e.pkgname}-${e.pkgver}`);
    for (const n of [e.pkgname, ...e.provides]) names.add(n.replace(/[<>=~].*$/, ''));
  }
  return { packages, names };
}

export async function runSchedule(options: ScheduleOptions): Promise<RepositorySummary> {
  const started = new Date().toISOString();
  const run = options.run ?? build;
  const { packages: indexed, names: outNames } = await outDirContents(options.outDir, options.arch);
  const outcomes = new Map<string, RecipeOutcome>();
  const rebuilt = new Set<string>();
  const failed = new Set<string>();
  const cpus = Math.max(1, Math.floor(availableParallelism() / options.jobs));
  const pending = [...options.graph.nodes];
  const running = new Map<string, Promise<void>>();

  const outcome = (node: RecipeNode, status: RecipeStatus, extra: Partial<RecipeOutcome> = {}): RecipeOutcome => {
    const o = { recipe: node.id, file: node.file, status, dependsOn: node.dependsOn, packages: node.packages, ...extra };
    outcomes.set(node.id, o);
    return o;
  };
  const upToDate = (node: RecipeNode): boolean =>
    !options.force &&
    node.packages.every((p) => indexed.has(p)) &&
    !(options.rebuildDependents && node.dependsOn.some((d) => rebuilt.has(d)));

  const exists = (file: string) => access(file).then(() => true, () => false);
  const outIndex = join(resolve(options.outDir), options.arch, 'APKINDEX.tar.gz');
  /** Runs one build; never rejects (a failure, even in making its options, is the recipe's outcome). */
  const launch = async (node: RecipeNode): Promise<void> => {
    const { renderer, done } = options.progress(node);
    const begun = new Date().toISOString();
    try {
      const base = await options.buildOptions(node, { progress: renderer, cpus });
      const env = base.environment ?? {};
      // Appended after the recipe's own repositories, as `--repository-append` is, only for a recipe that
      // installs something from it: the out dir's index changes with every build, and a root's identity
      // includes its repositories' indexes, so appending it everywhere would make a fresh root per build.
      // Its packages are signed with the signing key, so that key's public half is trusted too.
      const usesOutDir = node.dependsOn.length > 0 || node.needs.some((n) => outNames.has(n));
      const outRepo = usesOutDir && (await exists(outIndex)) ? [resolve(options.outDir)] : [];
      const outKey = base.signingKey && (await exists(`${base.signingKey}.pub`)) ? [`${base.signingKey}.pub`] : [];
      await run({
        ...base,
        recipeFile: node.file,
        environment: { ...env, repositoryAppend: [...(env.repositoryAppend ?? []), ...outRepo], keyringAppend: [...(env.keyringAppend ?? []), ...outKey] },
      });
      rebuilt.add(node.id);
      done(outcome(node, 'built', { started: begun, finished: new Date().toISOString() }));
    } catch (err) {
      failed.add(node.id);
      const details = err instanceof BuilderError ? err.details : [];
      done(outcome(node, 'failed', { started: begun, finished: new Date().toISOString(), error: [errorMessage(err), ...details].join('\n') }));
    }
  };

  while (pending.length > 0 || running.size > 0) {
    if (options.signal?.aborted) break;
    for (let i = 0; i < pending.length && running.size < options.jobs; ) {
      const node = pending[i]!;
      if (!node.dependsOn.every((d) => outcomes.has(d))) {
        i++;
        continue;
      }
      pending.splice(i, 1);
      const broken = node.dependsOn.filter((d) => failed.has(d) || outcomes.get(d)?.status === 'skipped');
      if (broken.length > 0) {
        const because = [...new Set(broken.flatMap((d) => (failed.has(d) ? [d] : (outcomes.get(d)!.because ?? []))))].sort();
        outcome(node, 'skipped', { because });
        continue;
      }
      if (!isArchTargeted(node.plan)) {
        outcome(node, 'not-for-arch');
        continue;
      }
      if (upToDate(node)) {
        outcome(node, 'up-to-date');
        continue;
      }
      const job = launch(node).finally(() => running.delete(node.id));
      running.set(node.id, job);
    }
    if (running.size === 0) {
      if (pending.length === 0) break;
      // Cannot happen for a graph in topological order; guard against looping forever.
      throw new BuilderError(`internal: no runnable recipe among ${pending.map((n) => n.id).join(', ')}`);
    }
    await Promise.race(running.values());
  }
  await Promise.allSettled(running.values());
  if (options.signal?.aborted) throw options.signal.reason instanceof Error ? options.signal.reason : new BuilderError('interrupted');
  return {
    started,
    finished: new Date().toISOString(),
    jobs: options.jobs,
    // Every recipe has its outcome: the loop ends only when none is pending or running.
    recipes: options.graph.nodes.map((n) => outcomes.get(n.id)!),
  };
}

/** The end table: one row per recipe. */
export function summaryTable(summary: RepositorySummary): string[] {
  const rows = summary.recipes.map((r) => {
    const what =
      r.status === 'skipped'
        ? `skipped because of ${r.because?.join(', ') ?? '?'}`
        : r.status === 'up-to-date'
          ? 'skipped, up to date'
          : r.status === 'not-for-arch'
            ? 'skipped, not built for this architecture'
            : r.status === 'failed'
              ? `FAILED: ${r.error?.split('\n')[0] ?? ''}`
              : `built in ${((Date.parse(r.finished!) - Date.parse(r.started!)) / 1000).toFixed(1)}s`;
    return [r.recipe, what] as const;
  });
  const width = Math.max(6, ...rows.map(([name]) => name.length));
  const count = (s: RecipeStatus) => summary.recipes.filter((r) => r.status === s).length;
  return [
    `${'recipe'.padEnd(width)}  result`,
    ...rows.map(([name, what]) => `${name.padEnd(width)}  ${what}`),
    `${count('built')} built, ${count('up-to-date')} up to date, ${count('failed')} failed, ${count('skipped')} skipped because of a failure`,
  ];
}
