// Every problem a recipe can have gets one message with its location (file:line:col and key path), and all
// problems of a file are reported together.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRecipe } from '../../src/config/load.ts';
import { ConfigError, UsageError } from '../../src/errors.ts';
import { compileRecipe, type CompileOptions } from '../../src/pipeline/compile.ts';
import { recipeProblems } from '../helpers/recipe-problems.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

/** Compile (or load) a recipe and return its problems as `line:col path: message`. */
async function problems(text: string, options: Partial<CompileOptions> = {}): Promise<string[]> {
  return recipeProblems(await tempDir(), text, options);
}

const PKG = 'package: {name: x, version: "1"}\n';
const SHA256 = 'a'.repeat(64);

describe('recipe problems found while loading', () => {
  it('rejects uses with runs, with without uses, uses with a nested pipeline', async () => {
    expect(
      await problems(`${PKG}pipeline:
  - uses: autoconf/make
    runs: make
  - runs: echo
    with: {a: b}
  - uses: autoconf/make
    pipeline:
      - runs: echo
`),
    ).toEqual([
      '3:5 pipeline[0]: a step cannot have both "uses" and "runs"',
      '5:5 pipeline[1]: "with" needs "uses"',
      '7:5 pipeline[2]: a step cannot have both "uses" and "pipeline"',
    ]);
  });

  it('rejects unknown keys in steps and subpackages with suggestions', async () => {
    expect(
      await problems(`${PKG}pipeline:
  - runs: echo
    working-dir: src
subpackages:
  - name: x-doc
    pipline: []
`),
    ).toEqual([
      '4:5 pipeline[0].working-dir: unknown key "working-dir" (did you mean "working-directory"?)',
      '7:5 subpackages[0].pipline: unknown key "pipline" (did you mean "pipeline"?)',
    ]);
  });

  it('rejects wrong types and a bad timeout', async () => {
    expect(
      await problems(`package:
  name: x
  version: "1"
  timeout: soon
  dependencies:
    runtime: libc
vars: [a, b]
`),
    ).toEqual([
      '4:12 package.timeout: expected a duration such as "90m" or "2h", or a number of seconds, found "soon"',
      '6:14 package.dependencies.runtime: expected a list, found a string',
      '7:7 vars: expected a mapping, found a list',
    ]);
  });
});

describe('recipe problems found while compiling', () => {
  it('reports a syntax error in `if` with its column, for every form', async () => {
    expect(
      await problems(`${PKG}pipeline:
  - if: \${{build.arch}} = 'x86_64'
    runs: a
  - if: \${{build.arch}} == x86_64
    runs: b
  - if: ('a' == 'a'
    runs: c
  - if: "'a' == 'b"
    runs: d
  - if: "'a' == 'a' && "
    runs: e
  - if: "'a' == 'a') "
    runs: f
`),
    ).toEqual([
      `3:9 pipeline[0].if: invalid condition "\${{build.arch}} = 'x86_64'": syntax error at column 17: use "==" to compare, not "="`,
      '5:9 pipeline[1].if: invalid condition "${{build.arch}} == x86_64": syntax error at column 20: expected a quoted string or ${{…}}, found "x86_64"',
      `7:9 pipeline[2].if: invalid condition "('a' == 'a'": syntax error at column 12: missing ")" for the "(" at column 1`,
      `9:9 pipeline[3].if: invalid condition "'a' == 'b": syntax error at column 8: unterminated string starting at column 8`,
      `11:9 pipeline[4].if: invalid condition "'a' == 'a' &&": syntax error at column 15: expected a quoted string or \${{…}}, found the end of the condition`,
      `13:9 pipeline[5].if: invalid condition "'a' == 'a')": syntax error at column 11: unbalanced ")"`,
    ]);
  });

  it('reports undefined substitutions everywhere they can be written, together', async () => {
    expect(
      await problems(`package:
  name: x
  version: "1"
  dependencies:
    runtime:
      - \${{vars.dep}}
vars:
  dir: \${{targets.nope}}/x
environment:
  environment:
    A: \${{package.nam}}
pipeline:
  - if: \${{build.arc}} == 'x'
    working-directory: \${{vars.wd}}
    runs: echo \${{vars.dir}}
  - uses: autoconf/make
    with:
      dir: \${{range.key}}
subpackages:
  - name: x-\${{subpkg.name}}
`),
    ).toEqual([
      '11:5 environment.environment.A: undefined substitution "${{package.nam}}"',
      '20:11 subpackages[0].name: undefined substitution "${{subpkg.name}}" (only defined in a subpackage)',
      '6:9 package.dependencies.runtime: undefined substitution "${{vars.dep}}"',
      '13:9 pipeline[0].if: undefined substitution "${{build.arc}}"',
      '14:24 pipeline[0].working-directory: undefined substitution "${{vars.wd}}"',
      '15:11 pipeline[0].runs: undefined substitution "${{targets.nope}}" (in vars.dir)',
      '18:7 pipeline[1].with.dir: undefined substitution "${{range.key}}" (only defined in a subpackage with "range")',
    ]);
  });

  it('refuses unknown pipelines with a suggestion, and names that leave the pipeline dirs', async () => {
    expect(
      await problems(`${PKG}pipeline:
  - uses: autoconf/confgure
  - uses: make
  - uses: ../../etc/passwd
  - uses: /etc/passwd
  - uses: split\\dev
  - uses: split/./dev
`),
    ).toEqual([
      '3:11 pipeline[0].uses: "uses: autoconf/confgure": no pipeline named "autoconf/confgure" (did you mean "autoconf/configure"?)',
      '4:11 pipeline[1].uses: "uses: make": no pipeline named "make" (did you mean "autoconf/make"?)',
      '5:11 pipeline[2].uses: "uses: ../../etc/passwd": a pipeline name must not contain ".." segments',
      '6:11 pipeline[3].uses: "uses: /etc/passwd": a pipeline name must be relative (like "autoconf/make"), not an absolute path',
      '7:11 pipeline[4].uses: "uses: split\\dev": a pipeline name must not contain "\\"',
      '8:11 pipeline[5].uses: "uses: split/./dev": a pipeline name must not contain empty or "." segments',
    ]);
  });

  it('checks `with` against the declared inputs: unknown, required, checksum formats', async () => {
    expect(
      await problems(`${PKG}pipeline:
  - uses: fetch
    with:
      url: https://example.com/x.tar.gz
      expected-sha256: ${SHA256}
  - uses: fetch
    with:
      uri: https://example.com/x.tar.gz
      expected-sha256: abc123
  - uses: fetch
    with:
      uri: https://example.com/x.tar.gz
      expected-sha512: ${'z'.repeat(128)}
  - uses: git-checkout
    with:
      repository: https://example.com/x.git
      expected-commit: 0123456789abcdef
  - uses: strip
    with:
      options: -s
`),
    ).toEqual([
      '5:7 pipeline[0].with.url: unknown input "url" for pipeline "fetch" (did you mean "uri"?)',
      '3:11 pipeline[0].with: pipeline "fetch" needs input "uri" (The URI of the archive.)',
      '10:7 pipeline[1].with.expected-sha256: expected-sha256 must be 64 hexadecimal characters, found "abc123" (6 characters)',
      `14:7 pipeline[2].with.expected-sha512: expected-sha512 must be 128 hexadecimal characters, found "${'z'.repeat(128)}" (128 characters)`,
      '18:7 pipeline[3].with.expected-commit: expected-commit must be 40 hexadecimal characters, found "0123456789abcdef" (16 characters)',
      '21:7 pipeline[4].with.options: unknown input "options" for pipeline "strip" (did you mean "opts"?)',
    ]);
  });

  it('requires a checksum for fetch and rejects branch with tag', async () => {
    expect(
      await problems(`${PKG}pipeline:
  - uses: fetch
    with:
      uri: https://example.com/x.tar.gz
  - uses: git-checkout
    with:
      repository: https://example.com/x.git
      branch: main
      tag: v1
`),
    ).toEqual([
      '3:11 pipeline[0] → fetch: pipeline "fetch": needs expected-sha256 or expected-sha512 (or expected-none: true to skip verification): sources are verified and cached by checksum',
      '6:11 pipeline[1] → git-checkout: pipeline "git-checkout": branch ("main") and tag ("v1") are mutually exclusive',
    ]);
  });

  it('checks the fetch options: expected-none, timeouts and retry-limit', async () => {
    expect(
      await problems(`${PKG}pipeline:
  - uses: fetch
    with:
      uri: https://example.com/x.tar.gz
      expected-none: maybe
      timeout: soon
      dns-timeout: -1
      retry-limit: 0
  - uses: fetch
    with:
      uri: https://example.com/y.tar.gz
      expected-none: false
`),
    ).toEqual([
      '6:7 pipeline[0].with.expected-none: expected-none must be true or false, found "maybe"',
      '7:7 pipeline[0].with.timeout: timeout must be a number of seconds, found "soon"',
      '8:7 pipeline[0].with.dns-timeout: dns-timeout must be a number of seconds, found "-1"',
      '9:7 pipeline[0].with.retry-limit: retry-limit must be a whole number of at least 1, found "0"',
      '10:11 pipeline[1] → fetch: pipeline "fetch": needs expected-sha256 or expected-sha512 (or expected-none: true to skip verification): sources are verified and cached by checksum',
    ]);
  });

  it('checks the git-checkout options: branch tip, sparse paths, submodules and retries', async () => {
    const commit = 'c'.repeat(40);
    expect(
      await problems(`${PKG}pipeline:
  - uses: git-checkout
    with:
      repository: https://example.com/x.git
      tag: v1
      expected-commit: ${commit}
      expected-commit-is-branch-tip: true
  - uses: git-checkout
    with:
      repository: https://example.com/x.git
      branch: main
      expected-commit-is-branch-tip: true
  - uses: git-checkout
    with:
      repository: https://example.com/x.git
      expected-commit: ${commit}
      expected-commit-is-branch-tip: yes
      sparse-paths: src ../escape
      shallow-submodules: sometimes
      submodule-jobs: 0
      max-retries: -1
      initial-backoff: 1.5
`),
    ).toEqual([
      '8:7 pipeline[0].with.expected-commit-is-branch-tip: expected-commit-is-branch-tip is only valid with branch, not with tag',
      '13:7 pipeline[1].with.expected-commit-is-branch-tip: expected-commit-is-branch-tip needs expected-commit',
      '18:7 pipeline[2].with.expected-commit-is-branch-tip: expected-commit-is-branch-tip must be true or false, found "yes"',
      '20:7 pipeline[2].with.shallow-submodules: shallow-submodules must be true or false, found "sometimes"',
      '21:7 pipeline[2].with.submodule-jobs: submodule-jobs must be a whole number of at least 1, found "0"',
      '22:7 pipeline[2].with.max-retries: max-retries must be a whole number, found "-1"',
      '23:7 pipeline[2].with.initial-backoff: initial-backoff must be a whole number, found "1.5"',
      '19:7 pipeline[2].with.sparse-paths: sparse-paths: "../escape" must be a path inside the repository',
    ]);
  });

  it('reports a range naming no data, duplicate names after expansion, and invalid expanded names', async () => {
    expect(
      await problems(`${PKG}data:
  - name: versions
    items: {a: "1", b: "2"}
  - name: versions
    items: {}
subpackages:
  - range: version
    name: x-\${{range.key}}
  - range: versions
    name: x-same
  - range: versions
    name: x \${{range.key}}
  - name: x-b
  - range: versions
    name: x-\${{range.key}}
`),
    ).toEqual([
      '5:5 data[1].name: duplicate data name "versions"',
      '8:12 subpackages[0].range: range "version" names no data entry (did you mean "versions"?)',
      '11:11 subpackages[1][b].name: duplicate subpackage name "x-same" (first at 11:11)',
      '13:11 subpackages[2][a].name: invalid package name "x a": must match ^[a-zA-Z\\d][a-zA-Z\\d+_.-]*$',
      '13:11 subpackages[2][b].name: invalid package name "x b": must match ^[a-zA-Z\\d][a-zA-Z\\d+_.-]*$',
      '16:11 subpackages[4][b].name: duplicate subpackage name "x-b" (first at 14:11)',
    ]);
  });

  it('allows one name under opposite conditions but not twice among the built subpackages', async () => {
    const file = await writeRecipe(
      await tempDir(),
      `${PKG}subpackages:
  - name: x-lib
    if: \${{build.arch}} == 'x86_64'
  - name: x-lib
    if: \${{build.arch}} != 'x86_64'
`,
    );
    const plan = compileRecipe(await loadRecipe(file), { arch: 'aarch64' });
    expect(plan.packages.map((p) => p.name)).toEqual(['x', 'x-lib']);
    expect(
      await problems(`${PKG}subpackages:
  - name: x-lib
    if: \${{build.arch}} == 'x86_64'
  - name: x-lib
`),
    ).toEqual(['5:11 subpackages[1].name: duplicate subpackage name "x-lib" (first at 3:11)']);
  });

  it('checks assertions.required-steps against the steps whose `if` holds', async () => {
    expect(
      await problems(`${PKG}pipeline:
  - assertions:
      required-steps: 1
    pipeline:
      - if: \${{build.arch}} == 'aarch64'
        runs: a
      - if: \${{build.arch}} == 'riscv64'
        runs: b
`),
    ).toEqual(['4:7 pipeline[0].assertions.required-steps: 1 nested step must run, but 0 would on x86_64 (check their "if" conditions)']);
  });

  it('rejects an invalid var-transform regex and an unknown run-as user', async () => {
    expect(
      await problems(`${PKG}var-transforms:
  - from: \${{package.version}}
    match: "(unclosed"
    replace: x
    to: y
environment:
  accounts:
    run-as: nobody-here
`),
    ).toEqual([
      '4:12 var-transforms[0].match: invalid regular expression "(unclosed": /(unclosed/g: Unterminated group',
      '9:13 environment.accounts.run-as: run-as "nobody-here" names no user of environment.accounts.users',
    ]);
  });

  it('reports problems inside a --pipeline-dir definition at their place in that file', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'pipes', 'my'), { recursive: true });
    await writeFile(join(dir, 'pipes', 'my', 'step.yaml'), 'inputs:\n  a:\n    required: maybe\npipeline:\n  - runs: echo ${{inputs.b}}\n');
    await writeFile(join(dir, 'pipes', 'loop.yaml'), 'pipeline:\n  - uses: loop\n');
    const file = await writeRecipe(dir, `${PKG}pipeline:\n  - uses: my/step\n  - uses: loop\n`);
    const err = await Promise.resolve()
      .then(async () => compileRecipe(await loadRecipe(file), { arch: 'x86_64', pipelineDirs: [join(dir, 'pipes')] }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message.split('\n')).toEqual([
      `${join(dir, 'pipes', 'my', 'step.yaml')}:3:15: pipeline[0].uses (my/step): inputs.a.required: expected true or false, found "maybe"`,
      `${join(dir, 'pipes', 'loop.yaml')}:2:11: pipeline[1] → loop: pipeline[0].uses: pipeline "loop" uses itself (loop → loop)`,
    ]);
  });

  it('refuses an unknown --build-option, --arch and --pipeline-dir as usage errors', async () => {
    const file = await writeRecipe(await tempDir(), `${PKG}options:\n  rustls: {}\n`);
    const loaded = await loadRecipe(file);
    expect(() => compileRecipe(loaded, { arch: 'x86_64', buildOptions: ['rustl'] })).toThrow(
      new UsageError('--build-option: the recipe has no option "rustl" (did you mean "rustls"?) (options: rustls)'),
    );
    expect(() => compileRecipe(loaded, { arch: 'sparc' })).toThrow(/--arch: unknown architecture "sparc"/);
    expect(() => compileRecipe(loaded, { arch: 'x86_64', pipelineDirs: ['/nonexistent/pipes'] })).toThrow(
      new UsageError('--pipeline-dir: /nonexistent/pipes is not a directory'),
    );
  });
});
