// The recipes of a repository build: a directory's *.yaml / *.yml files (a YAML file without a top-level
// `package` mapping is not a recipe and is skipped with a note) or the files named; each loaded and compiled,
// every recipe's problems reported together before anything runs. Then the needs no recipe provides are
// looked up in the local repositories the builds will use.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { readApkIndex } from '../apk/index.ts';
import { loadRecipe } from '../config/load.ts';
import { isBaseEntry } from '../environment/base.ts';
import { locateRepository } from '../environment/apk/repository.ts';
import { BuilderError, errorMessage } from '../errors.ts';
import { compileRecipe } from '../pipeline/compile.ts';
import type { CompiledRecipe, RecipeGraph } from './graph.ts';
import { RepositoryGraphError } from './graph.ts';

export interface RecipeSetOptions {
  arch: string;
  pipelineDirs?: string[];
  buildOptions?: string[];
  note: (line: string) => void;
}

/** Whether the arguments ask for a repository build: a directory, or more than one recipe. */
export async function isRepositoryBuild(args: string[]): Promise<boolean> {
  if (args.length > 1) return true;
  return args.length === 1 && (await stat(args[0]!).catch(() => undefined))?.isDirectory() === true;
}

async function recipeFiles(args: string[], note: (line: string) => void): Promise<string[]> {
  const files: string[] = [];
  for (const arg of args) {
    const info = await stat(arg).catch((err: unknown) => {
      throw new BuilderError(`${arg}: ${errorMessage(err)}`);
    });
    if (!info.isDirectory()) {
      files.push(arg);
      continue;
    }
    const names = (await readdir(arg)).filter((n) => /\.ya?ml$/.test(n)).sort();
    for (const name of names) {
      const file = join(arg, name);
      if (await looksLikeRecipe(file)) files.push(file);
      else note(`skipping ${file}: not a recipe (no top-level "package" mapping)`);
    }
  }
  return files;
}

async function looksLikeRecipe(file: string): Promise<boolean> {
  try {
    const doc: unknown = parse(await readFile(file, 'utf8'));
    return typeof doc === 'object' && doc !== null && !Array.isArray(doc) && typeof (doc as Record<string, unknown>).package === 'object';
  } catch {
    // Unparseable YAML is reported by the recipe loader, with its location.
    return true;
  }
}

export async function loadRecipeSet(args: string[], options: RecipeSetOptions): Promise<CompiledRecipe[]> {
  const files = await recipeFiles(args, options.note);
  const out: CompiledRecipe[] = [];
  const problems: string[] = [];
  for (const file of files) {
    try {
      const plan = compileRecipe(await loadRecipe(file), { arch: options.arch, pipelineDirs: options.pipelineDirs, buildOptions: options.buildOptions });
      out.push({ file, plan });
    } catch (err) {
      problems.push(...errorMessage(err).split('\n'), ...(err instanceof BuilderError ? err.details.map((d) => `  ${d}`) : []));
    }
  }
  if (problems.length > 0) throw new BuilderError('recipes with problems (nothing was built)', { details: problems });
  if (out.length === 0) throw new BuilderError(`no recipe in ${args.join(', ')}`);
  return out;
}

export interface ExternalCheck {
  arch: string;
  /** Repositories every build gets (`--repository-append`, the out dir). */
  extraRepositories: string[];
  /** `--base`: a base may provide anything, so needs are not checked against it. */
  base?: string;
  baseDir: string;
}

/**
 * Every need no recipe provides must be in a repository of the recipes that need it. Only local
 * repositories can be read before building; a recipe with a base or a remote repository is left to the
 * resolver (the base or the remote index may well have the name).
 */
export async function checkExternalNeeds(graph: RecipeGraph, options: ExternalCheck): Promise<void> {
  const indexes = new Map<string, Set<string> | undefined>();
  const namesIn = async (dir: string): Promise<Set<string>> => {
    if (!indexes.has(dir)) {
      const index = await readApkIndex(join(dir, 'APKINDEX.tar.gz')).catch(() => undefined);
      indexes.set(dir, index && new Set(index.entries.flatMap((e) => [e.pkgname, ...e.provides.map((p) => p.replace(/[<>=~].*$/, ''))])));
    }
    return indexes.get(dir) ?? new Set();
  };
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const missing: string[] = [];
  for (const [name, ids] of graph.external) {
    for (const id of ids) {
      const node = byId.get(id)!;
      const repositories = [...node.plan.environment.repositories, ...node.plan.packages.flatMap((p) => p.test?.environment.repositories ?? []), ...options.extraRepositories];
      if (options.base !== undefined || repositories.some((r) => isBaseEntry(r) || /^(@\S+\s+)?https?:\/\//.test(r.trim()))) continue;
      let found = false;
      for (const repo of repositories) {
        if ((await namesIn(locateRepository(repo, options.arch, options.baseDir).base)).has(name)) found = true;
      }
      if (!found) missing.push(`${node.file}: needs "${name}", which no recipe provides and no repository has (${repositories.join(', ') || 'no repositories'})`);
    }
  }
  if (missing.length > 0) throw new RepositoryGraphError(`${missing.length} unresolvable dependencies (nothing was built)`, { details: missing });
}
