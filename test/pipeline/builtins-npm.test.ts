// npm/install runs for real with Debian's npm, offline: the packages are tarballs the test packs, named by
// `file:` specs (melange's `version` is any npm spec), so no registry is involved. The overrides path
// reinstalls the tree with a dependency forced to another tarball.
import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/tmp.ts';
import { compile, makeProject, type Project, succeed, writeFiles } from './builtin-project.ts';
import { hasTool } from './sandbox.ts';

const tempDir = useTempDirs();
const HAVE_NPM = (await hasTool('npm')) && (await hasTool('node'));

// npm must not look for a registry: no audit, funding or update checks; its cache stays in the workspace.
const ENV = `environment:
  environment:
    npm_config_audit: "false"
    npm_config_fund: "false"
    npm_config_update_notifier: "false"
    npm_config_cache: /home/build/.npm-cache
`;

async function pack(p: Project, name: string, version: string, files: Record<string, string>): Promise<void> {
  const staging = join(p.dir, 'staging', `${name}-${version}`);
  await writeFiles(join(staging, 'package'), files);
  await execa('tar', ['-czf', join(p.src, `${name}-${version}.tgz`), '-C', staging, 'package']);
}

async function npmProject(): Promise<Project> {
  const p = await makeProject(await tempDir());
  for (const version of ['1.0.0', '2.0.0']) {
    await pack(p, 'builder-dep', version, {
      'package.json': JSON.stringify({ name: 'builder-dep', version, main: 'index.js' }),
      'index.js': `module.exports = 'dep ${version}';\n`,
    });
  }
  await pack(p, 'builder-hello', '1.0.0', {
    'package.json': JSON.stringify({
      name: 'builder-hello',
      version: '1.0.0',
      bin: { 'builder-hello': 'bin/hello.js' },
      dependencies: { 'builder-dep': 'file:/home/build/builder-dep-1.0.0.tgz' },
    }),
    'bin/hello.js': "#!/usr/bin/env node\nconsole.log('npm-built with ' + require('builder-dep'));\n",
  });
  return p;
}

const recipe = (overrides = '') => `package: {name: builder-hello, version: "1.0.0", epoch: 0}
${ENV}pipeline:
  - uses: npm/install
    with:
      package: builder-hello
      version: file:/home/build/builder-hello-1.0.0.tgz
${overrides ? `      overrides: |\n        ${overrides}\n` : ''}`;

describe('npm/install', () => {
  it('generates npm install -g into <contextdir>/usr/ and adds the npm command to the environment', async () => {
    const plan = compile(await makeProject(await tempDir()), recipe());
    expect(plan.environment.packages).toEqual(['nodejs', 'npm', 'busybox']);
    expect(plan.packages[0]!.steps[0]!.script).toContain(
      "npm install -g 'builder-hello@file:/home/build/builder-hello-1.0.0.tgz' -prefix '/home/build/melange-out/builder-hello/usr/'\n",
    );
  });

  it.skipIf(!HAVE_NPM)('installs a package with its bin link and dependencies (needs npm)', async () => {
    const result = await succeed(await npmProject(), recipe());
    const usr = join(result.out('builder-hello'), 'usr');
    expect(await readlink(join(usr, 'bin/builder-hello'))).toBe('../lib/node_modules/builder-hello/bin/hello.js');
    expect((await execa('node', [join(usr, 'bin/builder-hello')])).stdout).toBe('npm-built with dep 1.0.0');
  });

  it.skipIf(!HAVE_NPM)('reinstalls the tree with overrides and leaves no package.json behind (needs npm)', async () => {
    const result = await succeed(await npmProject(), recipe('builder-dep@file:/home/build/builder-dep-2.0.0.tgz  # forced'));
    const lib = join(result.out('builder-hello'), 'usr/lib');
    expect((await execa('node', [join(result.out('builder-hello'), 'usr/bin/builder-hello')])).stdout).toBe('npm-built with dep 2.0.0');
    expect(JSON.parse(await readFile(join(lib, 'node_modules/builder-hello/package.json'), 'utf8')).version).toBe('1.0.0');
    await expect(readFile(join(lib, 'package.json'))).rejects.toThrow(/ENOENT/);
    await expect(readFile(join(lib, 'package-lock.json'))).rejects.toThrow(/ENOENT/);
  });
});
