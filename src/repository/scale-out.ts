// What every scale-out format shares: the engine's options, stable task names, and the layout a pod (or a
// CI job) sees, with the `builder` command lines that build one recipe and merge the index. The argv are
// arrays: recipe data never goes through a shell.
import { relative } from 'node:path';
import type { RecipeGraph, RecipeNode } from './graph.ts';

export interface ScaleOutOptions {
  /** The directory given to `builder plan`: recipe paths are taken relative to it. */
  recipesDir: string;
  arch: string;
  /** Container image with builder, bwrap and (for qemu) qemu-system installed. */
  image: string;
  runner: 'bubblewrap' | 'qemu';
  /** Argo: where packages travel between tasks: a shared volume, or the workflow's artifact repository. */
  storage: 'volume' | 'artifacts';
  /** Argo, volume storage: the PersistentVolumeClaim holding recipes, per-task out dirs and the merged repository. */
  pvc: string;
  /** Argo, artifact storage: the git repository (and revision) the recipes are checked out from. */
  recipesGit?: { repo: string; revision?: string };
  /** Argo, artifact storage: `configmap:key` of the artifact repository (default: the controller's). */
  artifactRepositoryRef?: { configMap: string; key: string };
  /** Argo: the Secret holding `builder.rsa` and `builder.rsa.pub`. GitHub: the secret with the private key. */
  signingKeySecret: string;
}

/** Task names as engines accept them (`[a-z0-9-]`, starting with a letter), unique, by recipe id. */
export function taskNames(graph: RecipeGraph): Map<string, string> {
  const names = new Map<string, string>();
  const used = new Set<string>();
  for (const node of graph.nodes) {
    const base = `r-${node.id.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/-+$/, '')}`.slice(0, 50);
    let name = base;
    for (let i = 2; used.has(name); i++) name = `${base}-${i}`;
    used.add(name);
    names.set(node.id, name);
  }
  return names;
}

export interface PodLayout {
  keyDir: string;
  /** Where a task writes its packages, and where a dependency's packages are found, by task name. */
  outDir(task: string): string;
  dependencyDir(task: string): string;
  /** The merged repository. */
  mergedDir: string;
  /** `builder` argv for one recipe: its own out dir, its dependencies' out dirs as repositories. */
  buildArgs(node: RecipeNode, dependencyTasks: string[], task: string): string[];
  /** Shell text (fixed, no recipe data) that merges every task's packages into `mergedDir` and signs the index. */
  mergeScript: string;
}

/**
 * Volume storage: everything on one claim at `/repository` (recipes/, tasks/<task>/, packages/). Artifact
 * storage: recipes checked out at `/work/recipes`, a task's packages at `/work/out` (its output artifact),
 * each dependency's at `/work/deps/<task>` (input artifacts), the merged repository at `/work/packages`.
 */
export function podLayout(options: ScaleOutOptions, keyDir = '/keys'): PodLayout {
  const volume = options.storage === 'volume';
  const recipesRoot = volume ? '/repository/recipes' : '/work/recipes';
  const dependencyDir = (task: string) => (volume ? `/repository/tasks/${task}` : `/work/deps/${task}`);
  const outDir = (task: string) => (volume ? dependencyDir(task) : '/work/out');
  const everyTask = volume ? '/repository/tasks/*' : '/work/deps/*';
  const mergedDir = volume ? '/repository/packages' : '/work/packages';
  const key = `${keyDir}/builder.rsa`;
  const archDir = `${mergedDir}/${options.arch}`;
  return {
    keyDir,
    outDir,
    dependencyDir,
    mergedDir,
    buildArgs: (node, dependencyTasks, task) => [
      'build',
      `${recipesRoot}/${relative(options.recipesDir, node.file)}`,
      '--arch', options.arch,
      '--runner', options.runner,
      '--out-dir', outDir(task),
      '--signing-key', key,
      '--keyring-append', `${key}.pub`,
      ...dependencyTasks.flatMap((d) => ['--repository-append', dependencyDir(d)]),
    ],
    mergeScript: [
      'set -eu',
      `mkdir -p ${archDir}`,
      `for apk in ${everyTask}/${options.arch}/*.apk; do`,
      '  [ -e "$apk" ] || continue',
      `  cp "$apk" "${archDir}/.$(basename "$apk").tmp" && mv "${archDir}/.$(basename "$apk").tmp" "${archDir}/$(basename "$apk")"`,
      'done',
      `set -- ${archDir}/*.apk`,
      `[ -e "$1" ] || { echo "no packages were built"; exit 1; }`,
      // builder index merges with the index already there, under a lock, and writes it atomically.
      `builder index --signing-key ${key} -o ${archDir}/APKINDEX.tar.gz "$@"`,
    ].join('\n'),
  };
}
