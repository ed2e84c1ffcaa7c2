import { describe, expect, it } from 'vitest';
import { loadRecipe } from '../../src/config/load.ts';
import { ConfigError } from '../../src/errors.ts';
import { compileRecipe, type CompileOptions } from '../../src/pipeline/compile.ts';
import { isArchTargeted } from '../../src/pipeline/plan.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

async function compile(text: string, options: Partial<CompileOptions> = {}) {
  const file = await writeRecipe(await tempDir(), text);
  return compileRecipe(await loadRecipe(file), { arch: 'x86_64', ...options });
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

describe('compiling uses, conditions and subpackages', () => {
  it('expands uses into steps with inputs, defaults and the caller\'s directory and environment', async () => {
    const plan = await compile(`
package: {name: p, version: "1.10"}
pipeline:
  - working-directory: build
    environment: {CC: clang}
    pipeline:
      - uses: autoconf/configure
        with:
          opts: --enable-x=\${{package.version}}
          dir: ""
      - uses: patch
        with:
          patches: a.patch
          fuzz: 1
`);
    const [configure, patch] = plan.packages[0]!.steps;
    expect(configure).toMatchObject({ name: 'autoconf/configure', uses: 'autoconf/configure', workdir: '/home/build/build', env: { CC: 'clang' } });
    // An empty value takes the default; defaults may use substitutions.
    expect(configure!.script).toContain("cd '.'");
    expect(configure!.script).toContain("--host='x86_64-pc-linux-gnu'");
    expect(configure!.script).toContain('--enable-x=1.10');
    expect(patch!.script).toContain("patch '-p1' '--fuzz=1'");
    expect(plan.environment.packages).toEqual(['autoconf', 'automake', 'libtool', 'patch']);
  });

  it('keeps with: values as their source text', async () => {
    const plan = await compile(`
package: {name: p, version: "1"}
pipeline:
  - uses: fetch
    with:
      uri: https://example.com/p.tgz
      expected-sha256: ${'0'.repeat(64)}
      extract: false
      strip-components: 00
`);
    expect(plan.packages[0]!.steps[0]!.script).toContain("case 'false' in");
    expect(plan.packages[0]!.steps[0]!.script).toContain("'--strip-components=00'");
  });

  it('skips steps, their needs and their sources when their if is false', async () => {
    const plan = await compile(`
package: {name: p, version: "1"}
pipeline:
  - if: \${{build.arch}} == 'aarch64'
    uses: fetch
    with: {uri: "https://example.com/arm.tgz", expected-sha256: ${'1'.repeat(64)}}
  - if: \${{build.arch}} == 'x86_64'
    uses: fetch
    with: {uri: "https://example.com/x86.tgz", expected-sha256: ${'2'.repeat(64)}}
  - if: \${{build.arch}} == 'x86_64'
    uses: fetch
    with: {uri: "https://mirror.example.com/x86.tgz", expected-sha256: ${'2'.repeat(64)}}
  - if: \${{build.arch}} == 'aarch64'
    needs: {packages: [arm-only]}
    runs: echo arm
`);
    expect(plan.sources.map((s) => s.kind === 'fetch' && s.uri)).toEqual(['https://example.com/x86.tgz']);
    expect(plan.packages[0]!.steps).toHaveLength(2);
    expect(plan.environment.packages).toEqual(['busybox']);
  });

  it('compiles test sections into test plans that install the package and what the tests need', async () => {
    const plan = await compile(`
package: {name: p, version: "1"}
test:
  environment:
    contents: {packages: [zlib]}
  pipeline:
    - uses: python/import
      with: {import: json}
subpackages:
  - name: p-tools
    test:
      pipeline:
        - runs: \${{subpkg.name}} --help
`);
    expect(plan.packages[0]!.test?.environment.packages).toEqual(['p', 'zlib']);
    expect(plan.packages[0]!.test?.steps[0]!.uses).toBe('python/import');
    expect(plan.packages[1]!.test?.environment.packages).toEqual(['p-tools']);
    expect(plan.packages[1]!.test?.steps[0]!.script).toBe('p-tools --help');
    // Test needs stay out of the build environment.
    expect(plan.environment.packages).toEqual([]);
  });

  it('applies var-transforms with Go replacement semantics', async () => {
    const plan = await compile(`
package: {name: p, version: "1.2.3"}
var-transforms:
  - {from: "\${{package.version}}", match: '(\\d+)\\.(\\d+)', replace: '\${1}x', to: braced}
  - {from: "\${{package.version}}", match: '(\\d+)\\.(\\d+)', replace: '$1x', to: named}
  - {from: "\${{package.version}}", match: '(?i)(?P<first>\\d)\\.', replace: '$$$first-', to: dollar}
pipeline:
  - runs: echo \${{vars.braced}} \${{vars.named}} \${{vars.dollar}}
`);
    // Go reads $1x as the (missing) group "1x", ${1}x as group 1 then x.
    expect(plan.packages[0]!.steps[0]!.script).toBe('echo 1x.3 .3 $1-$2-3');
  });

  it('produces plain data that survives JSON and knows its target architectures', async () => {
    const plan = await compile(`
package: {name: p, version: "1", target-architecture: [aarch64]}
pipeline:
  - uses: git-checkout
    with: {repository: "https://example.com/p.git", tag: v1, expected-commit: ${'a'.repeat(40)}}
`);
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
    expect(isArchTargeted(plan)).toBe(false);
    expect(isArchTargeted({ ...plan, arch: 'aarch64' })).toBe(true);
    expect(isArchTargeted({ ...plan, targetArchitecture: ['all'] })).toBe(true);
    expect(isArchTargeted({ ...plan, targetArchitecture: [] })).toBe(true);
  });
});
