// The compile, query and pipelines commands through the real CLI (a separate Node process).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileOutput } from '../../src/cli/commands/compile.ts';
import { builder, hasStackTrace } from '../helpers/cli.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const FIXTURES = fileURLToPath(new URL('../fixtures/recipes', import.meta.url));

describe('builder compile / query / pipelines', () => {
  it('compile prints the plan as stable JSON, honouring --arch, --pipeline-dir and --build-option', async () => {
    const recipe = join(FIXTURES, 'conditions.yaml');
    const r = await builder(['compile', recipe, '--arch', 'aarch64', '--build-option', 'rustls']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout + '\n').toBe(await compileOutput(recipe, { arch: 'aarch64', pipelineDir: [], buildOption: ['rustls'] }));
    const nested = await builder(['compile', join(FIXTURES, 'nested.yaml'), '--pipeline-dir', join(FIXTURES, 'pipelines')]);
    expect(nested.exitCode).toBe(0);
    expect(JSON.parse(nested.stdout).packages[0].steps.map((s: { uses?: string }) => s.uses).filter(Boolean)).toContain('test/say');
  });

  it('compile reports every problem with its location, once, without a stack trace', async () => {
    const file = await writeRecipe(
      await tempDir(),
      'package: {name: x, version: "1"}\npipeline:\n  - uses: ../escape\n  - if: "\'a\' === \'a\'"\n    runs: echo\n  - uses: fetch\n    with: {uri: x, expected-sha256: nothex}\n',
    );
    const r = await builder(['compile', file]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(hasStackTrace(r.stderr)).toBe(false);
    expect(r.stderr.trim().split('\n')).toEqual([
      `${file}:3:11: pipeline[0].uses: "uses: ../escape": a pipeline name must not contain ".." segments`,
      `${file}:4:9: pipeline[1].if: invalid condition "'a' === 'a'": syntax error at column 7: expected a quoted string or \${{…}}, found "="`,
      `${file}:7:20: pipeline[2].with.expected-sha256: expected-sha256 must be 64 hexadecimal characters, found "nothex" (6 characters)`,
    ]);
    const usage = await builder(['compile', file, '--pipeline-dir', join(file, 'nope')]);
    expect(usage.exitCode).toBe(2);
    expect(usage.stderr).toContain(`--pipeline-dir: ${join(file, 'nope')} is not a directory`);
  });

  it('query prints template fields and documents the syntax in --help', async () => {
    const r = await builder(['query', join(FIXTURES, 'package-keys.yaml'), '{{.Package.Name}}-{{.Package.Version}}-r{{.Package.Epoch}} {{.Vars.zeros}}']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('keys-1.10-r3 00303');
    const help = await builder(['query', '--help']);
    expect(help.stdout).toContain('Template syntax:');
    expect(help.stdout).toContain('.Package.TargetArchitecture');
    const bad = await builder(['query', join(FIXTURES, 'package-keys.yaml'), '{{.Package.Versoin}}']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('query: .Package.Versoin: no such field (did you mean "version"?)');
  });

  it('pipelines list and show describe the library, including --pipeline-dir overrides', async () => {
    const list = await builder(['pipelines', 'list', '--pipeline-dir', join(FIXTURES, 'pipelines')]);
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toMatch(/^git-checkout +Check out sources from git$/m);
    expect(list.stdout).toMatch(/^test\/say +Say something +\[/m);
    expect(list.stdout).toMatch(/^autoconf\/make +Run make \(fixture override\) +\[.*overrides <builtin>\/autoconf\/make\.yaml\]$/m);
    const show = await builder(['pipelines', 'show', 'git-checkout']);
    expect(show.exitCode).toBe(0);
    expect(show.stdout).toMatch(/^ {2}repository +required$/m);
    expect(show.stdout).toMatch(/^ {2}destination +default: \.$/m);
    expect(show.stdout).toContain('source: cloned on the host into the cache before the sandbox starts');
    const json = await builder(['pipelines', 'show', 'split/dev', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ name: 'split/dev', uses: ['split/paths'], inputs: [{ name: 'package', required: false }, { name: 'prefix', default: 'usr' }] });
    const missing = await builder(['pipelines', 'show', 'nope/nothing']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('no pipeline named "nope/nothing"');
  });
});
