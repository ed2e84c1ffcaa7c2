// melange's smaller language pipelines: ruby/require and ruby/test (Debian's ruby), perl/cpan-install
// (perl's ExtUtils::MakeMaker) and python/pipinstall (Debian's pip, offline) run for real. Checked by their
// generated commands only:
// - python/build-gpep517: Debian 12 does not package gpep517.
// - php/composer-install: composer require resolves packages from Packagist, which tests may not reach.
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/tmp.ts';
import { compile, fail, files, makeProject, succeed } from './builtin-project.ts';
import { hasTool, toolRuns } from './sandbox.ts';

const tempDir = useTempDirs();
const HAVE_RUBY = await hasTool('ruby');
const HAVE_PERL = await toolRuns('perl', ['-MExtUtils::MakeMaker', '-e', '1']);
const HAVE_PIP = (await toolRuns('python3', ['-m', 'pip', '--version'])) && (await toolRuns('python3', ['-c', 'import setuptools']));
const project = async (files: Record<string, string> = {}) => makeProject(await tempDir(), files);

describe('ruby/require and ruby/test', () => {
  const recipe = (withText: string) => `package: {name: ruby-x, version: "1.0", epoch: 0}
pipeline:
  - uses: ruby/require
    with:
      ruby: /usr/bin/ruby
${withText}  - uses: ruby/test
    with:
      command: |
        ruby -e 'exit(RUBY_VERSION >= "2.0" ? 0 : 1)'
`;
  it.skipIf(!HAVE_RUBY)('require libraries one by one, failing on one that does not load (needs ruby)', async () => {
    const ok = await succeed(await project(), recipe("      requires: |\n        require 'json'  # stdlib\n        require 'set'\n"));
    expect(ok.log).toContain("ruby/require: require 'json': PASS");
    expect(ok.log).toContain("ruby/require: require 'set': PASS");
    const log = await fail(await project(), recipe('      require: no_such_library_here\n'));
    expect(log).toContain("ruby/require: require 'no_such_library_here': FAIL");
  });

  it('ruby/require adds the ruby it uses; ruby/test runs its command', async () => {
    const plan = compile(await project(), recipe('      require: json\n'));
    expect(plan.environment.packages).toEqual(['/usr/bin/ruby', 'busybox']);
    expect(plan.packages[0]!.steps[1]!.script).toBe(`ruby -e 'exit(RUBY_VERSION >= "2.0" ? 0 : 1)'\n`);
  });
});

describe('perl/cpan-install', () => {
  it.skipIf(!HAVE_PERL)('configures a distribution that make then installs as a vendor module (needs perl)', async () => {
    const result = await succeed(
      await project({
        'Makefile.PL': "use ExtUtils::MakeMaker;\nWriteMakefile(NAME => 'Hello', VERSION => '1.0');\n",
        'lib/Hello.pm': "package Hello;\nour $GREETING = 'cpan-built';\n1;\n",
      }),
      `package: {name: perl-hello, version: "1.0", epoch: 0}
pipeline:
  - uses: perl/cpan-install
  - uses: autoconf/make
  - uses: autoconf/make-install
  - uses: perl/cleanup
`,
    );
    const installed = await files(result.out('perl-hello'));
    const module = installed.find((f) => f.endsWith('/Hello.pm'));
    expect(module).toMatch(/^usr\/(share|lib)\/.*perl.*\/Hello\.pm$/);
    const run = await execa('perl', ['-I', join(result.out('perl-hello'), module!, '..'), '-MHello', '-e', 'print $Hello::GREETING']);
    expect(run.stdout).toBe('cpan-built');
  });
});

describe('python/pipinstall', () => {
  it.skipIf(!HAVE_PIP)('installs the project into the package under /usr (needs pip and setuptools)', async () => {
    const result = await succeed(
      await project({
        'pyproject.toml': '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "hellopip"\nversion = "1.0"\n',
        'hellopip.py': "GREETING = 'pip-built'\n",
      }),
      `package: {name: py3-hellopip, version: "1.0", epoch: 0}
environment:
  environment:
    PIP_NO_INDEX: "1"
    PIP_DISABLE_PIP_VERSION_CHECK: "1"
pipeline:
  - uses: python/pipinstall
`,
    );
    const installed = await files(result.out('py3-hellopip'));
    expect(installed.find((f) => /^usr\/.*-packages\/hellopip\.py$/.test(f))).toBeDefined();
  });
});

describe('python/build-gpep517 and php/composer-install (generated commands only: see the top of the file)', () => {
  it('build-gpep517 builds a wheel into dist and installs it', async () => {
    const steps = compile(await project(), 'package: {name: py3-x, version: "1.0", epoch: 0}\npipeline:\n  - uses: python/build-gpep517\n')
      .packages[0]!.steps.map((s) => s.script);
    expect(steps[1]).toContain('python3 -m gpep517 build-wheel --wheel-dir dist --output-fd 3 3>&1 >&2\n');
    expect(steps[1]).toContain("python3 -m installer -d '/home/build/melange-out/py3-x' dist/*.whl\n");
  });

  it('composer-install requires the package into the shared /usr/share/php vendor tree', async () => {
    const plan = compile(await project(), `package: {name: php-psr-log, version: "3.0.2", epoch: 0}
pipeline:
  - uses: php/composer-install
    with:
      package: psr/log
      version: \${{package.version}}
      opts: --no-dev
`);
    expect(plan.environment.packages).toEqual(['busybox', 'ca-certificates-bundle', 'composer']);
    const script = plan.packages[0]!.steps[1]!.script;
    expect(script).toContain("dir='/home/build/melange-out/php-psr-log/usr/share/php'\n");
    expect(script).toContain("  --no-dev \\\n  'psr/log:3.0.2'");
  });
});
