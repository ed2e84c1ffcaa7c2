// A small project made by a test, built with a recipe in the Bubblewrap sandbox (see sandbox.ts): what the
// built-in pipeline tests share.
import { mkdir, readdir, readlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { onTestFinished } from 'vitest';
import { parseRecipe } from '../../src/config/load.ts';
import { compileRecipe } from '../../src/pipeline/compile.ts';
import type { BuildPlan } from '../../src/pipeline/plan.ts';
import type { Mount } from '../../src/runners/runner.ts';
import { type RunResult, runPlan } from './sandbox.ts';

export interface Project {
  dir: string;
  src: string;
  cache: string;
}

/** A project under `parent` (a private temp dir): src/ holding `files`, and an empty cache/. */
export async function makeProject(parent: string, files: Record<string, string> = {}): Promise<Project> {
  const src = join(parent, 'src');
  await mkdir(join(parent, 'cache'), { recursive: true });
  await mkdir(src, { recursive: true });
  await writeFiles(src, files);
  return { dir: parent, src, cache: join(parent, 'cache') };
}

export async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(root, name, '..'), { recursive: true });
    await writeFile(join(root, name), content);
  }
}

export function compile(p: Project, recipe: string, arch = 'x86_64'): BuildPlan {
  return compileRecipe(parseRecipe(recipe, join(p.src, 'recipe.yaml')), { arch });
}

export async function build(p: Project, recipe: string, mounts: Mount[] = []): Promise<RunResult> {
  await writeFile(join(p.src, 'recipe.yaml'), recipe);
  return runPlan(compile(p, recipe), { sourceDir: p.src, cacheDir: p.cache, parent: p.dir, mounts });
}

/** A build that must succeed; its workspace is removed when the test ends, whatever the outcome. */
export async function succeed(p: Project, recipe: string, mounts: Mount[] = []): Promise<RunResult> {
  const result = await build(p, recipe, mounts);
  onTestFinished(() => result.workspace.remove());
  if (result.exitCode !== 0) throw new Error(`build failed (exit ${result.exitCode}):\n${result.log}`);
  return result;
}

/** A build that must fail; returns its log. */
export async function fail(p: Project, recipe: string): Promise<string> {
  const result = await build(p, recipe);
  onTestFinished(() => result.workspace.remove());
  if (result.exitCode === 0) throw new Error(`build succeeded but should have failed:\n${result.log}`);
  return result.log;
}

/** Every path under dir (directories with a trailing /, links as `name -> target`), sorted. */
export async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const path = join(d, e.name);
      const rel = relative(dir, path);
      if (e.isSymbolicLink()) out.push(`${rel} -> ${await readlink(path)}`);
      else if (e.isDirectory()) {
        out.push(`${rel}/`);
        await walk(path);
      } else out.push(rel);
    }
  };
  await walk(dir);
  return out.sort();
}

export const files = async (dir: string): Promise<string[]> => (await tree(dir)).filter((f) => !f.endsWith('/'));
