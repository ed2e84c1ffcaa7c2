import { describe, expect, it } from 'vitest';
import { loadRecipe } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

async function load(text: string) {
  const dir = await tempDir();
  return loadRecipe(await writeRecipe(dir, text));
}

async function problems(text: string): Promise<string[]> {
  try {
    await load(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.location.line}:${p.location.col} ${p.path}: ${p.message}`);
  }
  throw new Error('expected the recipe to be rejected');
}

describe('loading recipes', () => {
  it('keeps scalars as their source text', async () => {
    const { recipe } = await load(`
package:
  name: x
  version: 1.10
  epoch: 0
vars:
  a: 00303
  b: true
  c: ~
data:
  - name: py
    items:
      3.10: "310"
      3.9: ~
`);
    expect(recipe.package?.version?.value).toBe('1.10');
    expect(recipe.vars).toEqual({ a: '00303', b: 'true', c: '' });
    expect(recipe.data?.[0]?.items).toEqual({ '3.10': '310', '3.9': '' });
  });

  it('resolves anchors, aliases, merge keys and block scalars', async () => {
    const { recipe } = await load(`
package: {name: x, version: "1"}
environment:
  environment: &env
    A: one
    B: two
vars:
  <<: *env
  B: mine
pipeline:
  - runs: |
      echo one
      echo two
`);
    expect(recipe.vars).toEqual({ B: 'mine', A: 'one' });
    expect(recipe.pipeline?.[0]?.runs?.value).toBe('echo one\necho two\n');
  });

  it('rejects unknown keys with a suggestion and location', async () => {
    expect(await problems('package:\n  name: x\n  version: "1"\n  descripton: y\npipelin: []\n')).toEqual([
      '4:3 package.descripton: unknown key "descripton" (did you mean "description"?)',
      '5:1 pipelin: unknown key "pipelin" (did you mean "pipeline"?)',
    ]);
  });

  it('reports missing name and version, and invalid names', async () => {
    expect(await problems('package:\n  epoch: 0\n')).toEqual([
      '2:3 package.name: "name" is required',
      '2:3 package.version: "version" is required',
    ]);
    expect(await problems('package:\n  name: -bad name\n  version: "1"\n')).toEqual([
      expect.stringMatching(/^2:9 package.name: invalid package name "-bad name"/),
    ]);
  });

  it('reports YAML syntax errors with line and column', async () => {
    const p = await problems('package:\n  name: [x\n  version: 1\n');
    expect(p[0]).toMatch(/^\d+:\d+ : /);
  });

  it('reports a missing file by name', async () => {
    await expect(loadRecipe('/nonexistent/recipe.yaml')).rejects.toThrow('/nonexistent/recipe.yaml: cannot read recipe: no such file');
  });

  it('checks step shapes and duplicate subpackages together', async () => {
    expect(
      await problems(`
package: {name: x, version: "1"}
pipeline:
  - runs: a
    with: {k: v}
subpackages:
  - name: x-doc
  - name: x-doc
  - name: x
`),
    ).toEqual([
      '4:5 pipeline[0]: "with" needs "uses"',
      '8:11 subpackages[1].name: duplicate subpackage name "x-doc" (first at 7:11)',
      '9:11 subpackages[2].name: subpackage "x" has the main package\'s name',
    ]);
  });

  it('reports wrong types', async () => {
    expect(await problems('package: {name: x, version: "1", epoch: one}\npipeline: {runs: x}\n')).toEqual([
      '1:41 package.epoch: expected an integer, found "one"',
      '2:11 pipeline: expected a list, found a mapping',
    ]);
  });
});
