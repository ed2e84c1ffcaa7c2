// Steps run as melange runs them, end to end through the real CLI, real bwrap and real roots: a step's own
// `set -o pipefail` works on a Debian base (dash as /bin/sh: steps run in bash) and in a busybox APK root;
// a build script may call git; `builder test` tests the package just built even when the base has one of
// the same name.
import { copyFile, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readApkIndex } from '../../src/apk/index.ts';
import { generateSigningKey, loadSigningKey } from '../../src/apk/keys.ts';
import { readApk } from '../../src/apk/reader.ts';
import { stepCommand } from '../../src/build/steps.ts';
import { SHARED_ROOT_CACHE } from '../environment/shared-cache.ts';
import { builder } from '../helpers/cli.ts';
import { busyboxTree } from '../helpers/busybox.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { packageTree, writeIndex } from '../initramfs/apk-repository.ts';

const tempDir = useTempDirs();
/** Dirs that outlive one test (a key, a repository), removed after the file. */
const lasting: string[] = [];
async function lastingDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'builder-steps-'));
  lasting.push(d);
  return d;
}
afterAll(async () => {
  await Promise.all(lasting.map((d) => rm(d, { recursive: true, force: true })));
});
const SDE = '1700000000';

/** A signed APK repository with `busybox` (Debian's busybox-static, every applet linked) and `git` (this host's). */
async function busyboxAndGitRepository(work: string): Promise<{ dir: string; publicKey: string }> {
  const keyPath = join(work, 'steps-test.rsa');
  const { publicPath } = await generateSigningKey(keyPath, { bits: 2048 });
  const key = await loadSigningKey(keyPath);
  const dir = join(work, 'repo');

  const busybox = await packageTree(dir, key, await busyboxTree(work), { pkgname: 'busybox', pkgver: '1.35.0-r0', depend: [], provides: [] });

  // git and the libraries it links, at the paths the dynamic loader looks in.
  const gitTree = join(work, 'git');
  const place = async (from: string, to: string): Promise<void> => {
    await mkdir(dirname(join(gitTree, to)), { recursive: true });
    await copyFile(await realpath(from), join(gitTree, to));
  };
  await place('/usr/bin/git', 'usr/bin/git');
  await execa('chmod', ['0755', join(gitTree, 'usr/bin/git')]);
  for (const line of (await execa('ldd', ['/usr/bin/git'])).stdout.split('\n')) {
    const lib = /=>\s*(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)/.exec(line)?.[1];
    if (lib) await place(lib, lib.slice(1));
  }
  const git = await packageTree(dir, key, gitTree, { pkgname: 'git', pkgver: '2.39.0-r0', depend: [], provides: [] });
  await writeIndex(dir, key, [busybox.entry, git.entry]);
  return { dir, publicKey: publicPath };
}

const PIPEFAIL_STEPS = `
  - name: pipefail
    runs: |
      set -o pipefail
      if false | true; then echo "pipefail did not take"; exit 1; fi
      mkdir -p "\${{targets.destdir}}/usr/share/steps"
      echo pipefail > "\${{targets.destdir}}/usr/share/steps/pipefail"
  - name: last command false in an and-list
    runs: |
      [ -e /no/such/file ] && echo never`;

const GIT_STEPS = `
  - name: a build script that calls git
    runs: |
      git init -q repo
      cd repo
      echo x > f
      git add f
      GIT_AUTHOR_DATE="@$SOURCE_DATE_EPOCH +0000" GIT_COMMITTER_DATE="@$SOURCE_DATE_EPOCH +0000" \\
        git -c user.name=b -c user.email=b@example.invalid commit -q -m one
      mkdir -p "\${{targets.destdir}}/usr/share/steps"
      git log -1 --format=%ct > "\${{targets.destdir}}/usr/share/steps/git-date"`;

function recipe(name: string, environment: string, steps: string): string {
  return `package:
  name: ${name}
  version: 1.0.0
  epoch: 0
  description: steps as melange runs them
  copyright:
    - license: MIT
${environment}
pipeline:${steps}
`;
}

async function fileOf(apk: string, path: string): Promise<string> {
  const dir = await tempDir();
  await execa('tar', ['-xzf', apk, '-C', dir], { reject: false });
  return readFile(join(dir, path), 'utf8');
}

let keyDir: string;

beforeAll(async () => {
  keyDir = await lastingDir();
  expect((await builder(['keygen', '--bits', '2048', join(keyDir, 'out.rsa')])).exitCode).toBe(0);
});

async function build(recipeText: string, name: string, extra: string[]) {
  const work = await tempDir();
  const file = join(work, `${name}.yaml`);
  await writeFile(file, recipeText);
  const out = join(work, 'out');
  const r = await builder(['build', file, '--runner', 'bubblewrap', '--out-dir', out, '--signing-key', join(keyDir, 'out.rsa'), ...extra], {
    env: { SOURCE_DATE_EPOCH: SDE },
  });
  return { r, apk: join(out, 'x86_64', `${name}-1.0.0-r0.apk`), out };
}

describe('the step command', () => {
  it('is melange\'s script (set -e, the script, exit 0), run by a shell that has pipefail', () => {
    const argv = stepCommand('make', false);
    expect(argv.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(argv.at(-1)).toBe('set -e\nmake\nexit 0\n');
    expect(stepCommand('make', true).at(-1)).toBe('set -ex\nmake\nexit 0\n');
  });
});

describe('steps on a Debian base (dash is /bin/sh)', () => {
  const base = ['--base', 'debian:bookworm:git', '--root-cache-dir', SHARED_ROOT_CACHE];

  it('a step using set -o pipefail builds; pipefail takes effect; a false last and-list does not fail', async () => {
    const { r, apk } = await build(recipe('pipefail-deb', '', PIPEFAIL_STEPS), 'pipefail-deb', base);
    expect(r.exitCode, r.all).toBe(0);
    expect(await fileOf(apk, 'usr/share/steps/pipefail')).toBe('pipefail\n');
  }, 600_000);

  it('a build script that calls git builds, with git from the base', async () => {
    const { r, apk } = await build(recipe('git-deb', '', GIT_STEPS), 'git-deb', base);
    expect(r.exitCode, r.all).toBe(0);
    expect(await fileOf(apk, 'usr/share/steps/git-date')).toBe(`${SDE}\n`);
  }, 600_000);

  it('a failing pipeline fails the step once the step asks for pipefail', async () => {
    const steps = `
  - runs: |
      set -o pipefail
      false | true`;
    const { r } = await build(recipe('pipefail-fails', '', steps), 'pipefail-fails', base);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/failed with exit code 1/);
  }, 600_000);
});

describe('steps in an APK root of busybox and git (no base)', () => {
  let environment: string;
  let rootCache: string;

  beforeAll(async () => {
    const work = await lastingDir();
    const repo = await busyboxAndGitRepository(work);
    rootCache = join(work, 'roots');
    environment = `environment:
  contents:
    repositories:
      - ${repo.dir}
    keyring:
      - ${repo.publicKey}
    packages:
      - busybox
      - git
`;
  }, 300_000);

  it('a step using set -o pipefail builds in busybox ash, with pipefail in effect', async () => {
    const { r, apk } = await build(recipe('pipefail-apk', environment, PIPEFAIL_STEPS), 'pipefail-apk', ['--root-cache-dir', rootCache]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toMatch(/no base \+ 2 apk: busybox-1\.35\.0-r0 git-2\.39\.0-r0/);
    expect(await fileOf(apk, 'usr/share/steps/pipefail')).toBe('pipefail\n');
  }, 300_000);

  it('a build script that calls git builds', async () => {
    const { r, apk } = await build(recipe('git-apk', environment, GIT_STEPS), 'git-apk', ['--root-cache-dir', rootCache]);
    expect(r.exitCode, r.all).toBe(0);
    expect(await fileOf(apk, 'usr/share/steps/git-date')).toBe(`${SDE}\n`);
  }, 300_000);
});

describe('builder test of a package whose name the base also has', () => {
  it('installs and tests the built package from the out dir, at the recipe\'s full version, and says so', async () => {
    // `hostname` is Essential in Debian: every bookworm base has its own hostname package.
    const text = `package:
  name: hostname
  version: 99.1
  epoch: 2
  description: not Debian's hostname
  copyright:
    - license: MIT
pipeline:
  - runs: |
      mkdir -p "\${{targets.destdir}}/usr/share/builder-test"
      echo built > "\${{targets.destdir}}/usr/share/builder-test/hostname"
test:
  pipeline:
    - runs: |
        test "$(cat /usr/share/builder-test/hostname)" = built
        grep -A1 -x 'P:hostname' /lib/apk/db/installed | grep -x 'V:99.1-r2'
`;
    const work = await tempDir();
    const file = join(work, 'hostname.yaml');
    await writeFile(file, text);
    const out = join(work, 'out');
    const common = ['--runner', 'bubblewrap', '--base', 'debian:bookworm', '--root-cache-dir', SHARED_ROOT_CACHE, '--out-dir', out];
    const b = await builder(['build', file, ...common, '--signing-key', join(keyDir, 'out.rsa')], { env: { SOURCE_DATE_EPOCH: SDE } });
    expect(b.exitCode, b.all).toBe(0);
    const t = await builder(['test', file, ...common, '--keyring-append', join(keyDir, 'out.rsa.pub')]);
    expect(t.exitCode, t.all).toBe(0);
    expect(t.stderr).toMatch(/PASS hostname$/m);
    const repo = join(out, 'x86_64');
    expect(t.all).toContain(`testing hostname-99.1-r2 from ${repo}`);
    expect(t.all).toContain(`environment: from ${repo}: hostname-99.1-r2`);
  }, 600_000);
});

describe('build date', () => {
  it('.PKGINFO carries builddate = SOURCE_DATE_EPOCH, and the index has it as t:', async () => {
    const { r, apk, out } = await build(recipe('dated', '', '\n  - runs: mkdir -p "${{targets.destdir}}/usr/share/dated" && echo x > "${{targets.destdir}}/usr/share/dated/x"'), 'dated', [
      '--base', 'debian:bookworm', '--root-cache-dir', SHARED_ROOT_CACHE,
    ]);
    expect(r.exitCode, r.all).toBe(0);
    expect((await readApk(apk)).info.builddate).toBe(Number(SDE));
    const index = await readApkIndex(join(out, 'x86_64', 'APKINDEX.tar.gz'));
    expect(index.entries[0]?.builddate).toBe(Number(SDE));
    const text = (await execa('tar', ['-xzOf', join(out, 'x86_64', 'APKINDEX.tar.gz'), 'APKINDEX'])).stdout;
    expect(text).toMatch(new RegExp(`^t:${SDE}$`, 'm'));
  }, 600_000);
});
