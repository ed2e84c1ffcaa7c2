import { expect } from 'vitest';
import { loadRecipe } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import { compileRecipe, type CompileOptions } from '../../src/pipeline/compile.ts';
import { writeRecipe } from './tmp.ts';

/**
 * Compile (or load) a recipe written into `dir` and return its problems as `line:col path: message`, in the
 * order reported (or by position with `sorted`). Checks what the CLI relies on: every problem names a YAML
 * file, one line per problem, never a stack trace.
 */
export async function recipeProblems(
  dir: string,
  text: string,
  options: Partial<CompileOptions> = {},
  { sorted = false }: { sorted?: boolean } = {},
): Promise<string[]> {
  const file = await writeRecipe(dir, text);
  try {
    compileRecipe(await loadRecipe(file), { arch: 'x86_64', ...options });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) expect(p.location.file === file || p.location.file.includes('.yaml')).toBe(true);
    expect(err.message.split('\n')).toHaveLength(err.problems.length);
    expect(err.message).not.toMatch(/\n\s+at /);
    const list = sorted ? [...err.problems].sort((a, b) => a.location.line - b.location.line || a.location.col - b.location.col) : err.problems;
    return list.map((p) => `${p.location.line}:${p.location.col} ${p.path}: ${p.message}`);
  }
  throw new Error('expected the recipe to be rejected');
}
