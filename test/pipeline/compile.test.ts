import { describe, expect, it } from 'vitest';
import { loadRecipe } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import { compileRecipe } from '../../src/pipeline/compile.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

async function compile(text: string) {
  const file = await writeRecipe(await tempDir(), text);
  return compileRecipe(await loadRecipe(file), { arch: 'x86_64' });
}

describe('compiling recipes', () => {
  it('substitutes package, targets, vars and build names', async () => {
    const plan = await compile(`
package:
  name: hello
  version: "2.1"
  epoch: 3
  dependencies:
    runtime: [libc]
    provides: ["hi=\${{package.full-version}}"]
vars:
  greeting: hey
var-transforms:
  - from: \${{package.version}}
    match: (\\d+)\\.(\\d+)
    replace: \${1}_$2
    to: underscored
environment:
  environment:
    GREETING: \${{vars.greeting}}
pipeline:
  - name: Install \${{package.name}}
    working-directory: src
    environment: {X: "1"}
    pipeline:
      - runs: echo \${{ targets.destdir }} \${{vars.underscored}} \${{build.arch}} \${{host.triplet.gnu}}
      - working-directory: /abs
        runs: echo \${{targets.contextdir}}
subpackages:
  - name: \${{package.name}}-doc
    pipeline:
      - runs: echo \${{targets.subpkgdir}} \${{subpkg.name}} \${{targets.destdir}}
`);
    expect(plan.packages.map((p) => p.name)).toEqual(['hello', 'hello-doc']);
    const [main, doc] = plan.packages;
    expect(main!.dependencies).toEqual({ runtime: ['libc'], provides: ['hi=2.1-r3'], replaces: [] });
    expect(plan.environment.env).toMatchObject({ GREETING: 'hey', HOME: '/home/build' });
    expect(main!.steps).toEqual([
      {
        name: 'echo /home/build/melange-out/hello 2_1 x86_64 x86_64-pc-linux-gnu',
        script: 'echo /home/build/melange-out/hello 2_1 x86_64 x86_64-pc-linux-gnu',
        workdir: '/home/build/src',
        env: { X: '1' },
        source: expect.stringMatching(/recipe.yaml:24:15$/),
      },
      expect.objectContaining({ script: 'echo /home/build/melange-out/hello', workdir: '/abs', env: { X: '1' } }),
    ]);
    expect(doc!.steps[0]!.script).toBe('echo /home/build/melange-out/hello-doc hello-doc /home/build/melange-out/hello');
    expect(doc!.origin).toBe('hello');
  });

  it('reports every undefined substitution with its location', async () => {
    const err = await compile(`
package: {name: x, version: "1"}
pipeline:
  - runs: echo \${{vars.nope}}
  - runs: echo \${{package.nam}}
`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const lines = (err as ConfigError).message.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/recipe.yaml:4:11: pipeline\[0\].runs: undefined substitution "\$\{\{vars.nope\}\}"$/);
    expect(lines[1]).toMatch(/recipe.yaml:5:11: pipeline\[1\].runs: undefined substitution "\$\{\{package.nam\}\}"$/);
  });

  it('rejects an unknown architecture as a usage error', async () => {
    const file = await writeRecipe(await tempDir(), 'package: {name: x, version: "1"}\n');
    expect(() => compileRecipe({ file, recipe: { loc: { file, line: 1, col: 1 } } as never }, { arch: 'sparc' })).toThrow(/--arch: unknown architecture "sparc"/);
  });
});
