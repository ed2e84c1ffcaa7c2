import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { renderPipelineInfo, renderPipelineList, showPipeline } from '../../src/cli/commands/pipelines.ts';
import { ConfigError, UsageError } from '../../src/errors.ts';
import { BUILTIN_PIPELINE_DIR, PipelineLibrary, pipelineNameProblem } from '../../src/pipeline/library.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const FIXTURE_PIPELINES = fileURLToPath(new URL('../fixtures/recipes/pipelines', import.meta.url));

/** melange's built-in set, and split/paths (the helper builder's split pipelines share). */
const BUILTINS = [
  'R/build', 'autoconf/configure', 'autoconf/make', 'autoconf/make-install', 'cargo/build', 'cmake/build',
  'cmake/configure', 'cmake/install', 'copy', 'fetch', 'git-am', 'git-checkout', 'go/build', 'go/build/v2',
  'go/bump', 'go/covdata', 'go/deps', 'go/install', 'llvm/covreport', 'maven/configure-mirror', 'maven/pombump',
  'meson/compile', 'meson/configure', 'meson/install', 'meson/test', 'move', 'npm/install', 'patch', 'pecl/install',
  'pecl/phpize', 'perl/cleanup', 'perl/cpan-install', 'perl/make', 'php/composer-install', 'python/build',
  'python/build-gpep517', 'python/build-wheel', 'python/import', 'python/install', 'python/pipinstall',
  'python/test', 'ruby/build', 'ruby/clean', 'ruby/install', 'ruby/require', 'ruby/test', 'split/alldocs',
  'split/bin', 'split/debug', 'split/dev', 'split/docs', 'split/infodir', 'split/lib', 'split/locales',
  'split/manpages', 'split/paths', 'split/static', 'strip', 'xcover/ensure', 'xcover/profile', 'xcover/status',
  'xcover/stop', 'xcover/wait',
];

describe('the pipeline library', () => {
  it('ships every built-in pipeline, each a valid definition with described inputs', () => {
    const library = new PipelineLibrary();
    expect(library.list().map((s) => s.name)).toEqual(BUILTINS);
    for (const name of BUILTINS) {
      const hit = library.find(name);
      expect(hit.found, name).toBe(true);
      if (!hit.found) continue;
      expect(hit.definition.origin).toBe('builtin');
      expect(hit.definition.path).toBe(join(BUILTIN_PIPELINE_DIR, `${name}.yaml`));
      expect(hit.definition.config.name?.value, name).toBeTruthy();
      for (const [input, spec] of Object.entries(hit.definition.config.inputs ?? {})) {
        expect(spec.description, `${name} ${input}`).toBeTruthy();
      }
    }
  });

  it('has the inputs and defaults real recipes rely on', () => {
    const show = (name: string) => showPipeline(new PipelineLibrary(), name);
    const inputs = (name: string) => Object.fromEntries(show(name).inputs.map((i) => [i.name, i.required ? '*' : (i.default ?? '')]));
    expect(inputs('fetch')).toMatchObject({ uri: '*', 'expected-sha256': '', 'expected-sha512': '', 'strip-components': '1', directory: '.', extract: 'true', delete: 'false' });
    expect(inputs('git-checkout')).toMatchObject({ repository: '*', destination: '.', branch: '', tag: '', 'expected-commit': '', depth: 'unset', 'recurse-submodules': 'false', 'cherry-picks': '' });
    expect(inputs('patch')).toMatchObject({ patches: '', series: '', 'strip-components': '1', fuzz: '2' });
    expect(inputs('strip')).toEqual({ opts: '-g' });
    expect(inputs('autoconf/configure')).toEqual({ dir: '.', host: '${{host.triplet.gnu}}', build: '${{host.triplet.gnu}}', opts: '' });
    expect(inputs('autoconf/make')).toMatchObject({ dir: '.', opts: '' });
    expect(inputs('autoconf/make-install')).toMatchObject({ dir: '.', opts: '' });
    for (const n of ['cmake/configure', 'cmake/build', 'cmake/install', 'meson/configure', 'meson/compile', 'meson/install']) {
      expect(inputs(n), n).toEqual({ 'output-dir': 'output', opts: '' });
    }
    for (const n of ['split/dev', 'split/static', 'split/manpages', 'split/alldocs', 'split/infodir', 'split/locales', 'split/lib', 'split/bin', 'split/debug']) {
      expect(inputs(n), n).toHaveProperty('package', '');
    }
    // The inputs melange's own definitions declare, with its defaults.
    expect(inputs('fetch')).toMatchObject({
      'expected-none': '', timeout: '5', 'dns-timeout': '20', 'retry-limit': '5', 'purl-name': '${{package.name}}', 'purl-version': '${{package.version}}',
    });
    expect(inputs('git-checkout')).toMatchObject({
      'expected-commit-is-branch-tip': 'false', 'shallow-submodules': 'false', 'submodule-jobs': '1', 'sparse-paths': '', 'type-hint': '',
      'max-retries': '3', 'initial-backoff': '2', 'max-backoff': '60', reason: '',
    });
    expect(inputs('split/lib')).toEqual({ package: '', patterns: '', paths: '' });
    expect(inputs('go/build')).toMatchObject({ tidy: 'false', toolchaintags: 'netgo,osusergo', strip: '-w' });
    expect(inputs('go/install')).toMatchObject({ toolchaintags: 'netgo,osusergo', strip: '-w' });
    expect(inputs('cargo/build')).toMatchObject({ rustflags: '', opts: '--release', 'output-dir': 'target/release', jobs: '' });
    expect(show('go/build').needs).toContain('${{inputs.go-package}}');
    expect(show('fetch').hostSource).toBe('fetch');
    expect(show('git-checkout').hostSource).toBe('git');
    expect(show('split/dev').uses).toEqual(['split/paths']);
  });

  it('searches --pipeline-dir directories first, in order, and says what they override', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'autoconf'), { recursive: true });
    await writeFile(join(dir, 'autoconf', 'make.yaml'), 'name: second\npipeline: [{runs: make}]\n');
    await writeFile(join(dir, 'mine.yaml'), 'name: mine\npipeline: [{runs: "true"}]\n');
    await writeFile(join(dir, '.hidden.yaml'), 'name: hidden\n');
    const library = new PipelineLibrary([FIXTURE_PIPELINES, dir]);
    const make = library.find('autoconf/make');
    expect(make.found && make.definition.config.name?.value).toBe('Run make (fixture override)');
    expect(make.found && make.definition.origin).toBe(FIXTURE_PIPELINES);
    const listed = library.list();
    expect(listed.find((s) => s.name === 'autoconf/make')).toMatchObject({
      origin: FIXTURE_PIPELINES,
      overrides: [join(dir, 'autoconf', 'make.yaml'), '<builtin>/autoconf/make.yaml'],
    });
    expect(listed.map((s) => s.name)).toContain('mine');
    expect(listed.map((s) => s.name)).not.toContain('.hidden');
    const text = renderPipelineList(library);
    expect(text).toMatch(/^autoconf\/make +Run make \(fixture override\) +\[.*autoconf\/make\.yaml, overrides .*<builtin>\/autoconf\/make\.yaml\]$/m);
    expect(text).toMatch(/^fetch +Fetch and extract a source archive$/m);
  });

  it('refuses names that would leave the pipeline directories', () => {
    expect(pipelineNameProblem('autoconf/make')).toBeUndefined();
    expect(pipelineNameProblem('test/tw/ldd-check')).toBeUndefined();
    expect(pipelineNameProblem('../x')).toMatch(/".."/);
    expect(pipelineNameProblem('a/../../x')).toMatch(/".."/);
    expect(pipelineNameProblem('/abs')).toMatch(/absolute/);
    expect(pipelineNameProblem('a\\b')).toMatch(/"\\"/);
    expect(pipelineNameProblem('a//b')).toMatch(/empty/);
    expect(pipelineNameProblem('fetch.yaml')).toMatch(/without ".yaml"/);
    expect(pipelineNameProblem('')).toMatch(/empty/);
  });

  it('shows a pipeline as text: inputs with defaults and required, needs, description', () => {
    const text = renderPipelineInfo(showPipeline(new PipelineLibrary(), 'autoconf/configure'));
    expect(text).toContain('autoconf/configure — Run an autoconf configure script');
    expect(text).toMatch(/^ {2}dir +default: \.$/m);
    expect(text).toMatch(/^ {2}host +default: \$\{\{host\.triplet\.gnu\}\}$/m);
    expect(text).toMatch(/^ {2}opts +optional$/m);
    expect(text).toContain('needs: autoconf automake');
    expect(renderPipelineInfo(showPipeline(new PipelineLibrary(), 'fetch'))).toMatch(/^ {2}uri +required$/m);
  });

  it('reports an unknown name or an invalid definition file', async () => {
    expect(() => showPipeline(new PipelineLibrary(), 'autoconf/mak')).toThrow(
      new UsageError('pipelines show: no pipeline named "autoconf/mak" (did you mean "autoconf/make"?)'),
    );
    const dir = await tempDir();
    await writeFile(join(dir, 'bad.yaml'), 'pipeline: [\n');
    expect(() => showPipeline(new PipelineLibrary([dir]), 'bad')).toThrow(ConfigError);
    expect(() => showPipeline(new PipelineLibrary([dir]), 'bad')).toThrow(new RegExp(`^${join(dir, 'bad.yaml')}:\\d+:\\d+: `));
  });
});
