// The recipe language rules melange has and real recipes rely on, each with its own small recipe: string
// priorities substituted then checked, `range: ""`, expressions inside `${{ }}`, undefined inputs in step
// names, inputs forwarded to nested `uses:`, every melange linter name in `checks`, NUL bytes, origins.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRecipe } from '../../src/config/load.ts';
import { lintSettings } from '../../src/lint/settings.ts';
import { compileRecipe, type CompileOptions } from '../../src/pipeline/compile.ts';
import { recipeProblems } from '../helpers/recipe-problems.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

async function compile(text: string, options: Partial<CompileOptions> = {}) {
  const file = await writeRecipe(await tempDir(), text);
  return compileRecipe(await loadRecipe(file), { arch: 'x86_64', ...options });
}

async function problems(text: string, options: Partial<CompileOptions> = {}): Promise<string[]> {
  return recipeProblems(await tempDir(), text, options, { sorted: true });
}

/** A `--pipeline-dir` holding the given definitions (name → YAML). */
async function pipelineDir(defs: Record<string, string>): Promise<string> {
  const dir = await tempDir();
  for (const [name, text] of Object.entries(defs)) {
    const file = join(dir, `${name}.yaml`);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, text);
  }
  return dir;
}

const PKG = 'package: {name: x, version: "1.2"}\n';

describe('priorities are strings, substituted and then checked', () => {
  it('substitutes ${{range.value}} and ${{vars.x}} before reading the integer', async () => {
    const plan = await compile(`package:
  name: x
  version: "1.2"
  dependencies:
    provider-priority: \${{vars.prio}}
    replaces-priority: "7"
vars:
  prio: "10"
data:
  - name: majors
    items:
      "3": "30"
      "4": "40"
subpackages:
  - range: majors
    name: x-\${{range.key}}
    dependencies:
      provider-priority: \${{range.value}}
      replaces-priority: \${{range.key}}
`);
    expect(plan.packages.map((p) => [p.name, p.dependencies.providerPriority, p.dependencies.replacesPriority])).toEqual([
      ['x', 10, 7],
      ['x-3', 30, 3],
      ['x-4', 40, 4],
    ]);
  });

  it('an empty priority is unset', async () => {
    const plan = await compile(`${PKG}vars: {p: ""}\nsubpackages:\n  - name: x-a\n    dependencies: {provider-priority: "\${{vars.p}}"}\n`);
    expect(plan.packages[1]!.dependencies.providerPriority).toBeUndefined();
  });

  it('a non-integer names the key, the template and the value', async () => {
    expect(
      await problems(`${PKG}vars: {p: high}
data:
  - name: d
    items: {a: "1x"}
subpackages:
  - name: x-lit
    dependencies: {provider-priority: low}
  - name: x-var
    dependencies: {replaces-priority: "\${{vars.p}}"}
  - range: d
    name: x-\${{range.key}}
    dependencies:
      provider-priority: \${{range.value}}
`),
    ).toEqual([
      '8:39 subpackages[0].dependencies.provider-priority: provider-priority must be an integer, found "low"',
      '10:39 subpackages[1].dependencies.replaces-priority: replaces-priority must be an integer, "${{vars.p}}" gives "high"',
      '14:26 subpackages[2][a].dependencies.provider-priority: provider-priority must be an integer, "${{range.value}}" gives "1x"',
    ]);
  });

  it('an undefined name in a priority is reported once, as any undefined substitution', async () => {
    expect(await problems(`package:\n  name: x\n  version: "1"\n  dependencies: {provider-priority: "\${{vars.nope}}"}\n`)).toEqual([
      '4:37 package.dependencies.provider-priority: undefined substitution "${{vars.nope}}"',
    ]);
  });
});

describe('range', () => {
  it('range: "" is no range', async () => {
    const plan = await compile(`${PKG}subpackages:\n  - name: x-doc\n    range: ""\n    pipeline:\n      - runs: echo \${{subpkg.name}}\n`);
    expect(plan.packages.map((p) => p.name)).toEqual(['x', 'x-doc']);
    expect(plan.packages[1]!.steps[0]!.script).toBe('echo x-doc');
  });

  it('a range naming no data entry is still an error', async () => {
    expect(await problems(`${PKG}subpackages:\n  - name: x-doc\n    range: nope\n`)).toEqual([
      expect.stringMatching(/^4:12 subpackages\[0\]\.range: range "nope" names no data entry/),
    ]);
  });
});

describe('expressions inside ${{ }}', () => {
  it('produce values in runs and with, per range item', async () => {
    const dir = await pipelineDir({
      'test/echo': 'inputs:\n  opts: {}\npipeline:\n  - runs: configure ${{inputs.opts}}\n',
    });
    const plan = await compile(
      `${PKG}data:
  - name: bits
    items: {"32": a, "64": b}
subpackages:
  - range: bits
    name: x-\${{range.key}}
    pipeline:
      - runs: echo \${{range.key == "64" && "--enable-64" || ""}} \${{ !(range.key == "64") }}
      - uses: test/echo
        with:
          opts: \${{ build.arch == 'x86_64' && 'amd64' || build.arch }}-\${{range.key != "64" && "narrow" || "wide"}}
`,
      { pipelineDirs: [dir] },
    );
    expect(plan.packages.slice(1).map((p) => p.steps.map((s) => s.script))).toEqual([
      ['echo  true', 'configure amd64-narrow'],
      ['echo --enable-64 false', 'configure amd64-wide'],
    ]);
  });

  it('in if: ==, !=, &&, ||, !, parentheses and ${{ expression }}', async () => {
    const plan = await compile(`${PKG}pipeline:
  - if: \${{build.arch}} == 'x86_64' && !('a' == 'b')
    runs: echo one
  - if: "!(\${{build.arch}} == 'x86_64') || 'a' != 'a'"
    runs: echo two
  - if: \${{ build.arch == "x86_64" && package.version != "1.0" }}
    runs: echo three
  - if: ('\${{package.version}}' == '1.2' || 'a' == 'b') && "\${{package.name}}" == "x"
    runs: echo four
`);
    expect(plan.packages[0]!.steps.map((s) => s.script)).toEqual(['echo one', 'echo three', 'echo four']);
  });

  it('reports a malformed expression and an undefined name in one at their locations', async () => {
    expect(await problems(`${PKG}pipeline:\n  - runs: echo \${{ range.key == }}\n  - runs: echo \${{ vars.nope == "a" && "b" || "c" }}\n`)).toEqual([
      expect.stringMatching(/^3:11 pipeline\[0\]\.runs: undefined substitution "\$\{\{range\.key\}\}"/),
      '3:11 pipeline[0].runs: invalid expression "${{ range.key == }}": syntax error at column 13: expected a quoted string, a name or ${{…}}, found the end of the expression',
      '4:11 pipeline[1].runs: undefined substitution "${{vars.nope}}"',
    ]);
  });
});

describe('undefined names', () => {
  it('an undefined ${{inputs.X}} in a step name is left as written', async () => {
    const dir = await pipelineDir({ 'test/named': 'pipeline:\n  - name: stage ${{inputs.stage}}\n    runs: echo hi\n' });
    const plan = await compile(`${PKG}pipeline:\n  - name: build \${{inputs.flavour}}\n    runs: echo\n  - uses: test/named\n`, { pipelineDirs: [dir] });
    expect(plan.packages[0]!.steps.map((s) => s.name)).toEqual(['build ${{inputs.flavour}}', 'test/named: stage ${{inputs.stage}}']);
  });

  it('fail in runs, with, if and package fields with file:line:col', async () => {
    const dir = await pipelineDir({ 'test/echo': 'inputs:\n  opts: {}\npipeline:\n  - runs: echo ${{inputs.opts}}\n' });
    expect(
      await problems(
        `package:
  name: x
  version: "1"
  description: \${{vars.d}}
pipeline:
  - name: \${{vars.n}}
    runs: echo \${{inputs.x}}
  - uses: test/echo
    with: {opts: "\${{vars.o}}"}
  - if: \${{vars.i}} == 'a'
    runs: echo
`,
        { pipelineDirs: [dir] },
      ),
    ).toEqual([
      '4:16 package.description: undefined substitution "${{vars.d}}"',
      '6:11 pipeline[0].name: undefined substitution "${{vars.n}}"',
      '7:11 pipeline[0].runs: undefined substitution "${{inputs.x}}" (not an input of this pipeline)',
      '9:12 pipeline[1].with.opts: undefined substitution "${{vars.o}}"',
      '10:9 pipeline[2].if: undefined substitution "${{vars.i}}"',
    ]);
  });
});

describe('inputs forward to nested uses', () => {
  const defs = {
    'test/parent': `inputs:
  flavour: {default: plain}
  opts: {}
  extra: {default: parent-extra}
pipeline:
  - uses: test/child
  - uses: test/child
    with: {flavour: own}
  - uses: test/child
    with: {flavour: "\${{inputs.flavour}}-again"}
  - pipeline:
      - uses: test/child
`,
    'test/child': `inputs:
  flavour: {default: child-default}
  opts: {default: child-opts}
pipeline:
  - runs: echo \${{inputs.flavour}} \${{inputs.opts}} \${{inputs.extra}}
`,
  };

  it('inherit the parent’s resolved inputs; the child’s own with wins; ${{inputs.X}} is the parent’s', async () => {
    const dir = await pipelineDir(defs);
    const scripts = async (withText: string) =>
      (await compile(`${PKG}pipeline:\n  - uses: test/parent\n${withText}`, { pipelineDirs: [dir] })).packages[0]!.steps.map((s) => s.script);
    expect(await scripts('    with: {flavour: spicy, opts: -O2}\n')).toEqual([
      'echo spicy -O2 parent-extra',
      'echo own -O2 parent-extra',
      'echo spicy-again -O2 parent-extra',
      'echo spicy -O2 parent-extra',
    ]);
    // Nothing given: the parent's defaults are its resolved inputs; an input the parent leaves empty takes
    // the child's default.
    expect(await scripts('')).toEqual([
      'echo plain child-opts parent-extra',
      'echo own child-opts parent-extra',
      'echo plain-again child-opts parent-extra',
      'echo plain child-opts parent-extra',
    ]);
  });

  it('is deterministic across compilations', async () => {
    const dir = await pipelineDir(defs);
    const file = await writeRecipe(await tempDir(), `${PKG}pipeline:\n  - uses: test/parent\n    with: {flavour: a, opts: b}\n`);
    const plan = async () => JSON.stringify(compileRecipe(await loadRecipe(file), { arch: 'x86_64', pipelineDirs: [dir] }));
    const first = await plan();
    for (let i = 0; i < 3; i++) expect(await plan()).toBe(first);
  });

  it('a with key the child does not declare is still an error', async () => {
    const dir = await pipelineDir({
      'test/parent': 'inputs: {a: {}}\npipeline:\n  - uses: test/child\n    with: {nope: x}\n',
      'test/child': 'inputs: {b: {}}\npipeline:\n  - runs: echo ${{inputs.b}}\n',
    });
    expect(await problems(`${PKG}pipeline:\n  - uses: test/parent\n`, { pipelineDirs: [dir] })).toEqual([
      '4:12 pipeline[0] → test/parent: pipeline[0].with.nope: unknown input "nope" for pipeline "test/child" (inputs: b)',
    ]);
  });
});

describe('checks', () => {
  it('accepts melange linter names builder does not implement and notes each once', async () => {
    const plan = await compile(`package:
  name: x
  version: "1"
  checks: {disabled: [sbom, dll, strip]}
subpackages:
  - name: x-dev
    checks: {disabled: [sbom, python/docs], enabled: [lddcheck]}
`);
    expect(plan.notices).toEqual([
      expect.stringMatching(/^linter "sbom" is not implemented by builder, skipped \(.*recipe\.yaml:4:11 package\.checks\)$/),
      expect.stringMatching(/^linter "dll" is not implemented by builder, skipped /),
      expect.stringMatching(/^linter "lddcheck" /),
      expect.stringMatching(/^linter "python\/docs" is not implemented by builder, skipped \(.*recipe\.yaml:7:13 subpackages\[0\]\.checks\)$/),
    ]);
  });

  it('linting skips the unimplemented names instead of refusing them', () => {
    const settings = lintSettings({ disabled: ['sbom', 'strip'], enabled: ['lddcheck'] });
    expect(settings.severities.get('strip')).toBe('warning');
    expect(settings.severities.has('sbom')).toBe(false);
  });

  it('an unknown name is an error listing the valid ones', async () => {
    const [p] = await problems(`${PKG}subpackages:\n  - name: x-a\n    checks: {disabled: [stripp]}\n`);
    expect(p).toMatch(/^4:13 subpackages\[0\]\.checks: unknown linter "stripp" \(valid: .*binaryarch.*python\/docs.*strip.*usrmerge/);
  });
});

describe('control characters', () => {
  it('a raw NUL in a key or value is refused where it is', async () => {
    expect(await problems(`package:\n  name: x\n  version: "1"\nenvironment\0:\n  contents: {}\npipeline:\n  - runs: "a\0b"\n`)).toEqual([
      '4:12 : control character \\u0000 is not allowed in YAML',
      '7:13 : control character \\u0000 is not allowed in YAML',
    ]);
    expect(await problems(`${PKG}pipeline:\n  - runs: a\u0007b\n`)).toEqual(['3:12 : control character \\u0007 is not allowed in YAML']);
  });

  it('an escaped NUL is refused too, and messages escape control characters', async () => {
    expect(await problems(`${PKG}"environ\\0ment": {}\npipeline:\n  - runs: "a\\0b"\n`)).toEqual([
      '2:1 : "environ\\u0000ment" contains a NUL character',
      '4:11 : "a\\u0000b" contains a NUL character',
    ]);
    expect(await problems(`${PKG}"environ\\x01ment": {}\n`)).toEqual(['2:1 environ\\u0001ment: unknown key "environ\\u0001ment" (did you mean "environment"?)']);
  });
});

describe('environment origins', () => {
  it('names who asked for every package of the build and test environments', async () => {
    const dir = await pipelineDir({ 'test/needy': 'needs:\n  packages: [git, "${{inputs.tool}}"]\ninputs:\n  tool: {default: make}\npipeline:\n  - runs: git --version\n' });
    const plan = await compile(
      `${PKG}environment:
  contents:
    packages: [busybox, git]
pipeline:
  - uses: test/needy
  - needs: {packages: [jq]}
    runs: jq --version
options:
  extra:
    environment:
      contents:
        packages: {add: [curl]}
test:
  environment:
    contents:
      packages: [bash]
  pipeline:
    - uses: test/needy
      with: {tool: cmake}
`,
      { pipelineDirs: [dir], buildOptions: ['extra'] },
    );
    const env = plan.environment;
    expect(env.packages).toEqual(['busybox', 'git', 'curl', 'make', 'jq']);
    expect(Object.keys(env.origins).sort()).toEqual([...env.packages].sort());
    expect(env.origins.git).toEqual([
      expect.stringMatching(/recipe\.yaml:4:25 environment\.contents\.packages$/),
      expect.stringMatching(/recipe\.yaml:6:11 uses: test\/needy \(needs\.packages\)$/),
    ]);
    expect(env.origins.jq).toEqual([expect.stringMatching(/recipe\.yaml:7:24 pipeline\[1\]\.needs\.packages$/)]);
    expect(env.origins.curl).toEqual([expect.stringMatching(/recipe\.yaml:13:\d+ options\.extra\.environment\.contents\.packages\.add$/)]);
    const test = plan.packages[0]!.test!.environment;
    expect(test.packages).toEqual(['bash', 'cmake', 'git', 'x']);
    expect(Object.keys(test.origins).sort()).toEqual(test.packages);
    expect(test.origins.x).toEqual([expect.stringMatching(/recipe\.yaml:15:3 test \(the package under test\)$/)]);
    expect(test.origins.cmake).toEqual([expect.stringMatching(/recipe\.yaml:19:13 uses: test\/needy \(needs\.packages\)$/)]);
  });
});
