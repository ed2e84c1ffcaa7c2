// `builder build DIR` / `builder build A.yaml B.yaml …`: the recipes go through the graph and the local
// scheduler (src/repository/) instead of one by one. The flags only a repository build has live here.
import type { Command } from 'commander';
import type { BuildOptions } from '../build/build.ts';
import { buildReproducibly } from '../build/reproducible.ts';
import { BuilderError, UsageError } from '../errors.ts';
import { buildGraph } from '../repository/graph.ts';
import { chooseBuildProgress } from '../repository/progress.ts';
import { checkExternalNeeds, loadRecipeSet } from '../repository/recipes.ts';
import { parseJobs, type PerBuild, runSchedule, summaryTable } from '../repository/schedule.ts';
import type { SandboxFlags } from './sandbox-options.ts';

export interface RepositoryFlags {
  jobs: string;
  force: boolean;
  rebuildDependents: boolean;
  json: boolean;
}

export function addRepositoryOptions(cmd: Command): Command {
  return cmd
    .option('-j, --jobs <n>', 'with a directory or several recipes: builds run at once, or "auto" for the host\'s cores', '1')
    .option('--force', 'with a directory or several recipes: rebuild recipes whose packages are already in the out dir\'s index', false)
    .option('--rebuild-dependents', 'with a directory or several recipes: rebuild the recipes that depend on a rebuilt one', false)
    .option('--json', 'with a directory or several recipes: print the summary as JSON on stdout', false);
}

export const REPOSITORY_HELP = `
Several recipes or a directory: the recipes are built in dependency order (what each environment needs
against what each recipe provides), up to --jobs at once; recipes already in the out dir's index are
skipped; a failed recipe skips its dependents. See docs/scale-out.md for running the same graph on a cluster.`;

export async function buildRepository(
  args: string[],
  flags: RepositoryFlags & SandboxFlags & { outDir: string; signingKey?: string; verifyReproducible: boolean },
  target: { arch: string; pipelineDirs: string[] },
  optionsFor: (recipe: string, per: PerBuild, flags: SandboxFlags) => Promise<Omit<BuildOptions, 'recipeFile'>>,
  signal: AbortSignal,
): Promise<void> {
  let jobs: number;
  try {
    jobs = parseJobs(flags.jobs);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const progress = chooseBuildProgress();
  const recipes = await loadRecipeSet(args, { arch: target.arch, pipelineDirs: target.pipelineDirs, buildOptions: flags.buildOption, note: (l) => progress.note(l) });
  const graph = buildGraph(recipes);
  await checkExternalNeeds(graph, { arch: target.arch, extraRepositories: [...flags.repositoryAppend, flags.outDir], base: flags.base, baseDir: process.cwd() });
  progress.note(`${graph.nodes.length} recipes, ${jobs} at once`);
  const summary = await runSchedule({
    graph,
    jobs,
    force: flags.force,
    rebuildDependents: flags.rebuildDependents,
    outDir: flags.outDir,
    arch: target.arch,
    // The host's CPUs are split between the concurrent builds: the QEMU runner gets that many vCPUs, or
    // fewer when the recipe's package.resources.cpu asks for fewer (--cpu still wins).
    buildOptions: (node, per) => {
      const asked = /^\d+$/.test(node.plan.resources.cpu ?? '') ? Number(node.plan.resources.cpu) : per.cpus;
      return optionsFor(node.file, per, { ...flags, cpu: flags.cpu ?? String(Math.max(1, Math.min(asked, per.cpus))) });
    },
    progress: (node) => progress.open(node.id),
    run: flags.verifyReproducible ? buildReproducibly : undefined,
    signal,
  });
  for (const line of summaryTable(summary)) progress.note(line);
  if (flags.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  const failed = summary.recipes.filter((r) => r.status === 'failed');
  if (failed.length > 0) {
    throw new BuilderError(`${failed.length} of ${summary.recipes.length} recipes failed`, {
      details: failed.flatMap((f) => [`${f.recipe} (${f.file}):`, ...(f.error ?? '').split('\n').map((l) => `  ${l}`)]),
    });
  }
}
