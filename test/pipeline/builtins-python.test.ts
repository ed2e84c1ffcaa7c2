// python/build-wheel, python/test and python/import's venv run for real with Debian's python3-build,
// python3-installer and python3-venv, offline (build-wheel builds without isolation: see its description).
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/tmp.ts';
import { compile, fail, files, makeProject, succeed } from './builtin-project.ts';
import { toolRuns } from './sandbox.ts';

const tempDir = useTempDirs();
const HAVE_BUILD = await toolRuns('python3', ['-c', 'import build, installer, setuptools, wheel']);
const HAVE_VENV = await toolRuns('python3', ['-c', 'import venv']);

const PROJECT: Record<string, string> = {
  'pyproject.toml': `[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "hellowheel"
version = "1.0"
`,
  'hellowheel.py': "GREETING = 'wheel-built'\n",
};

const RECIPE = `package: {name: py3-hellowheel, version: "1.0", epoch: 0}
pipeline:
  - uses: python/build-wheel
  - uses: python/test
    with:
      command: test -f dist/hellowheel-1.0.tar.gz && test -f dist/hellowheel-1.0-py3-none-any.whl
`;

describe('python/build-wheel and python/test', () => {
  it('generate python -m build without isolation, installer into the package, and the test command', async () => {
    const plan = compile(await makeProject(await tempDir()), RECIPE);
    expect(plan.environment.packages).toEqual(['busybox', 'wolfi-base']);
    const steps = plan.packages[0]!.steps.map((s) => s.script);
    expect(steps[1]).toContain('"$py" -m build --no-isolation\npython3 -m installer -d \'/home/build/melange-out/py3-hellowheel\' dist/*.whl\n');
    expect(steps[2]).toBe('test -f dist/hellowheel-1.0.tar.gz && test -f dist/hellowheel-1.0-py3-none-any.whl');
  });

  it.skipIf(!HAVE_BUILD)('build an sdist and a wheel, install the wheel without .pyc files (needs python3-build, python3-installer)', async () => {
    const result = await succeed(await makeProject(await tempDir(), PROJECT), RECIPE);
    const out = result.out('py3-hellowheel');
    const installed = await files(out);
    // Where installer puts it is the interpreter's scheme: site-packages on Wolfi, dist-packages on Debian.
    const module = installed.find((f) => /-packages\/hellowheel\.py$/.test(f));
    expect(module).toBeDefined();
    expect(installed.filter((f) => f.endsWith('.pyc'))).toEqual([]);
    expect(installed.some((f) => f.includes('hellowheel-1.0.dist-info/'))).toBe(true);
    const sitePackages = join(out, module!, '..');
    const run = await execa('python3', ['-c', 'import hellowheel; print(hellowheel.GREETING)'], { env: { PYTHONPATH: sitePackages } });
    expect(run.stdout).toBe('wheel-built');
  });

  it('python/test fails the build when its command fails', async () => {
    const log = await fail(await makeProject(await tempDir()), `package: {name: py3-x, version: "1.0", epoch: 0}
pipeline:
  - uses: python/test
    with:
      command: echo testing; exit 3
`);
    expect(log).toContain('testing');
  });
});

describe('python/import with venv', () => {
  it.skipIf(!HAVE_VENV)("imports with the virtual environment's interpreter (needs python3-venv)", async () => {
    const result = await succeed(await makeProject(await tempDir()), `package: {name: py3-venv, version: "1.0", epoch: 0}
pipeline:
  - runs: |
      python3 -m venv --without-pip /home/build/venv
      site=$(/home/build/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
      echo 'VALUE = 1' > "$site/onlyinvenv.py"
  - uses: python/import
    with:
      venv: /home/build/venv
      import: onlyinvenv
`);
    expect(result.log).toContain('python/import: using /home/build/venv/bin/python');
    expect(result.log).toContain('python/import: import onlyinvenv: PASS');
  });

  it('refuses a venv without bin/python', async () => {
    const log = await fail(await makeProject(await tempDir()), `package: {name: py3-venv, version: "1.0", epoch: 0}
pipeline:
  - uses: python/import
    with:
      venv: /home/build/not-a-venv
      import: json
`);
    expect(log).toContain('python/import: /home/build/not-a-venv is not a virtual environment');
  });
});

