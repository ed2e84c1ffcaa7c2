// The command lines Wolfi's Makefile gives melange, given to builder unchanged (but --runner=bubblewrap for
// qemu and a Debian base, as this machine has no APK mirror): a fresh checkout whose local repository has no
// index yet, a local pipelines dir, two env files, a package from that repository appended, then `test`.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { readApk } from '../../src/apk/reader.ts';
import { DEBIAN_BASE, SHARED_ROOT_CACHE } from '../environment/shared-cache.ts';
import { fileFromApk } from '../helpers/apk.ts';
import { BUILDER, builder, hasStackTrace } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

const STAMP = `name: stamp
pipeline:
  - runs: |
      mkdir -p "\${{targets.destdir}}/usr/share/\${{package.name}}"
      echo "$WOLFI_ARCH_FLAG $WOLFI_COMMON" > "\${{targets.destdir}}/usr/share/\${{package.name}}/stamp"
`;

const recipe = (name: string, extra: string) => `package:
  name: ${name}
  version: 2.0.0
  epoch: 0
  description: ${name}
  copyright:
    - license: MIT
${extra}`;

const DEP = recipe('wolfi-dep', `pipeline:
  - uses: wolfi/stamp
`);

const APP = recipe('wolfi-app', `pipeline:
  - name: the appended package from the local repository is installed
    runs: grep -qx "x86 common" /usr/share/wolfi-dep/stamp
  - name: the source dir was copied
    runs: test -f from-source-dir
  - uses: wolfi/stamp
test:
  pipeline:
    - runs: |
        grep -qx "x86 common" /usr/share/wolfi-app/stamp
        test -s /usr/share/wolfi-dep/stamp
`);

async function checkout(): Promise<string> {
  const dir = await tempDir();
  await mkdir(join(dir, 'pipelines', 'wolfi'), { recursive: true });
  await writeFile(join(dir, 'pipelines', 'wolfi', 'stamp.yaml'), STAMP);
  await writeFile(join(dir, 'wolfi-dep.yaml'), DEP);
  await writeFile(join(dir, 'wolfi-app.yaml'), APP);
  for (const p of ['wolfi-dep', 'wolfi-app']) await mkdir(join(dir, p));
  await writeFile(join(dir, 'wolfi-app', 'from-source-dir'), 'x\n');
  await writeFile(join(dir, 'build-x86_64.env'), '# per-arch settings\nexport WOLFI_ARCH_FLAG=x86\n');
  await writeFile(join(dir, 'build-common.env'), 'WOLFI_COMMON="common" # shared\n');
  return dir;
}

/** The Makefile's `MELANGE_OPTS` for package PKG. */
function buildArgs(dir: string, pkg: string, envFiles = ['build-x86_64.env', 'build-common.env']): string[] {
  return [
    'build', `${pkg}.yaml`,
    '--runner=bubblewrap', `--base=${DEBIAN_BASE}`, `--root-cache-dir=${SHARED_ROOT_CACHE}`,
    `--apk-cache-dir=${join(SHARED_ROOT_CACHE, 'downloads')}`, '--arch=x86_64', `--cache-dir=${join(dir, 'cache')}`, '--cleanup',
    ...envFiles.map((f) => `--env-file=${f}`),
    '--git-repo-url=https://github.com/wolfi-dev/os', '--keyring-append=local-melange.rsa.pub', '--license=Apache-2.0', '--namespace=wolfi',
    '--pipeline-dir=./pipelines/', '--repository-append=./packages', '--signing-key=local-melange.rsa', `--source-dir=./${pkg}/`,
  ];
}

describe("Wolfi's Makefile invocations", () => {
  it('build (fresh repository, appended local package), then test', async () => {
    const dir = await checkout();
    const run = (args: string[]) => builder(args, { cwd: dir, env: { SOURCE_DATE_EPOCH: '1700000000' } });
    expect((await run(['keygen', 'local-melange.rsa'])).exitCode).toBe(0);

    const dep = await run(buildArgs(dir, 'wolfi-dep'));
    expect(dep.exitCode, dep.all).toBe(0);
    expect(dep.stderr).toMatch(/repository \.\/packages: no APKINDEX\.tar\.gz in .*packages\/x86_64 yet; counted as empty/);
    const depApk = join(dir, 'packages/x86_64/wolfi-dep-2.0.0-r0.apk');
    expect(await fileFromApk(depApk, 'usr/share/wolfi-dep/stamp')).toBe('x86 common\n');
    expect(await fileFromApk(depApk, 'var/lib/db/sbom/wolfi-dep-2.0.0-r0.spdx.json')).toContain('pkg:apk/wolfi/wolfi-dep@2.0.0-r0');

    const app = await run([...buildArgs(dir, 'wolfi-app'), '--package-append=wolfi-dep']);
    expect(app.exitCode, app.all).toBe(0);
    const appApk = join(dir, 'packages/x86_64/wolfi-app-2.0.0-r0.apk');
    expect((await readApk(appApk)).signatures.map((s) => s.keyName)).toEqual(['local-melange.rsa.pub']);

    const test = await run([
      'test', 'wolfi-app.yaml', `--base=debian:bookworm`, `--root-cache-dir=${SHARED_ROOT_CACHE}`, '--runner=bubblewrap',
      '--repository-append', './packages', '--keyring-append', 'local-melange.rsa.pub', '--arch', 'x86_64',
      '--pipeline-dirs=./pipelines/', '--test-package-append=wolfi-dep',
    ]);
    expect(test.exitCode, test.all).toBe(0);
    expect(test.stderr).toMatch(/PASS wolfi-app/);
    expect(hasStackTrace(dep.all + app.all + test.all)).toBe(false);
  }, 600_000);

  it('a missing env file is builder\'s own error, through the launcher as a user runs it', async () => {
    const dir = await checkout();
    // bin/builder executed directly: its `#!/usr/bin/env -S node --` line keeps Node off --env-file.
    const r = await execa(BUILDER, buildArgs(dir, 'wolfi-dep', ['build-x86_64.env', 'build-missing.env']), { cwd: dir, reject: false, env: { CI: 'true' } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('error: --env-file: build-missing.env: no such file');
    expect(r.stderr).not.toMatch(/^node:/m);
  }, 120_000);
});
