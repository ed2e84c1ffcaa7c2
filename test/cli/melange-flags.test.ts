// Every flag of melange's build, test and compile (the list below), each checked by its effect through the
// real CLI: real bwrap builds of a small recipe on the host's /usr, real packages read back.
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readApk } from '../../src/apk/reader.ts';
import { checkArchRunnable } from '../../src/cli/sandbox-options.ts';
import type { ProvenanceStatement } from '../../src/build/provenance.ts';
import type { SpdxDocument } from '../../src/sbom/spdx.ts';
import { fileFromApk } from '../helpers/apk.ts';
import { builder, type CliResult, hasStackTrace } from '../helpers/cli.ts';
import { readTarGz } from '../helpers/tar.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

const RECIPE = `package:
  name: flagtest
  version: 1.0.0
  epoch: 0
  description: shows what the flags did
  timeout: 1h
  resources:
    cpu: "1"
    memory: 1G
    disk: 1G
  copyright:
    - license: MIT
environment:
  environment:
    FROM_RECIPE: recipe
    BOTH: recipe
vars:
  option-value: "off"
options:
  extra:
    vars:
      option-value: enabled
pipeline:
  - runs: |
      d=\${{targets.destdir}}/usr/share/flagtest
      mkdir -p $d \${{targets.destdir}}/opt
      echo "A=\${A:-unset} BOTH=$BOTH FROM_RECIPE=$FROM_RECIPE OPTION=\${{vars.option-value}}" > $d/env
      ls -A | grep -v melange-out > $d/workspace || true
      echo opt > \${{targets.destdir}}/opt/flagtest
      sleep "\${SLEEP:-0}"
  - uses: local/mark
`;

const PIPELINE = `name: mark
pipeline:
  - runs: echo marked-by-local-pipeline > \${{targets.destdir}}/usr/share/flagtest/mark
`;

interface Run {
  dir: string;
  out: string;
  r: CliResult;
  apk: string;
}

/** A fresh copy of the recipe (and its pipelines dir), built with `args`. */
async function run(command: 'build' | 'compile', args: string[]): Promise<Run> {
  const dir = await tempDir();
  await writeFile(join(dir, 'flagtest.yaml'), RECIPE);
  await mkdir(join(dir, 'pipelines', 'local'), { recursive: true });
  await writeFile(join(dir, 'pipelines', 'local', 'mark.yaml'), PIPELINE);
  await writeFile(join(dir, 'a.env'), 'export A=from-a-env\nBOTH=env\n');
  await writeFile(join(dir, 'b.env'), '# second file\nSLEEP=0\n');
  await writeFile(join(dir, 'slow.env'), 'SLEEP=60\n');
  await writeFile(join(dir, 'vars.yaml'), '# over the recipe\noption-value: from-vars-file\nunused: x\n');
  await writeFile(join(dir, 'bad-vars.yaml'), 'option-value: ok\nnested:\n  not: a string\n');
  await writeFile(join(dir, 'bad.env'), 'GOOD=1\nthis line is not an assignment\n');
  const out = join(dir, 'packages');
  const common = command === 'build' ? ['--runner', 'bubblewrap', '--out-dir', out, '--cache-dir', join(dir, 'cache')] : [];
  await mkdir(join(dir, 'empty'));
  const pipelines = args.some((a) => a.startsWith('--pipeline-dirs')) ? [] : ['--pipeline-dir', 'pipelines'];
  const r = await builder([command, 'flagtest.yaml', ...pipelines, ...common, ...args.map((a) => a.replaceAll('@DIR', dir))], {
    cwd: dir,
    env: { SOURCE_DATE_EPOCH: '1700000000' },
  });
  return { dir, out, r, apk: join(out, 'x86_64', 'flagtest-1.0.0-r0.apk') };
}

const ok = (x: Run) => expect(x.r.exitCode, x.r.all).toBe(0);
const shared = async (x: Run, file: string) => fileFromApk(x.apk, `usr/share/flagtest/${file}`);

interface Row {
  /** melange's flag (and builder's other spelling, when it has one). */
  flag: string;
  command: 'build' | 'compile';
  args: string[];
  check: (x: Run) => Promise<void> | void;
}

const ROWS: Row[] = [
  { flag: '--env-file (repeatable, export lines; the recipe wins)', command: 'build', args: ['--env-file=a.env', '--env-file', 'b.env'], check: async (x) => {
    ok(x);
    expect(await shared(x, 'env')).toBe('A=from-a-env BOTH=recipe FROM_RECIPE=recipe OPTION=off\n');
  } },
  { flag: '--build-option', command: 'build', args: ['--build-option=extra'], check: async (x) => {
    ok(x);
    expect(await shared(x, 'env')).toContain('OPTION=enabled');
  } },
  { flag: '--pipeline-dir / --pipeline-dirs (comma-separated)', command: 'compile', args: ['--pipeline-dirs=empty,pipelines'], check: (x) => {
    ok(x);
    expect(x.r.stdout).toContain('marked-by-local-pipeline');
  } },
  { flag: '--empty-workspace', command: 'build', args: ['--empty-workspace'], check: async (x) => {
    ok(x);
    expect(await shared(x, 'workspace')).toBe('');
  } },
  { flag: '--source-dir (default: the recipe folder)', command: 'build', args: [], check: async (x) => {
    ok(x);
    expect((await shared(x, 'workspace')).split('\n')).toContain('flagtest.yaml');
  } },
  { flag: '--rm=false', command: 'build', args: ['--rm=false'], check: (x) => keptWorkspace(x) },
  { flag: '--cleanup=false', command: 'build', args: ['--cleanup=false'], check: (x) => keptWorkspace(x) },
  { flag: '--debug-runner', command: 'build', args: ['--debug-runner'], check: (x) => keptWorkspace(x) },
  { flag: '--cleanup (default: removed)', command: 'build', args: ['--cleanup', '--rm=true'], check: (x) => {
    ok(x);
    expect(x.r.all).not.toMatch(/workspace kept/);
  } },
  { flag: '--generate-index=false', command: 'build', args: ['--generate-index=false'], check: (x) => {
    ok(x);
    expect(existsSync(join(x.out, 'x86_64', 'APKINDEX.tar.gz'))).toBe(false);
    expect(existsSync(x.apk)).toBe(true);
  } },
  { flag: '--generate-index (default true)', command: 'build', args: ['--generate-index'], check: (x) => {
    ok(x);
    expect(existsSync(join(x.out, 'x86_64', 'APKINDEX.tar.gz'))).toBe(true);
  } },
  { flag: '--strip-origin-name', command: 'build', args: ['--strip-origin-name'], check: async (x) => {
    ok(x);
    expect((await readApk(x.apk)).info.origin).toBeUndefined();
  } },
  { flag: '--git-commit', command: 'build', args: ['--git-commit=0123456789abcdef0123456789abcdef01234567'], check: async (x) => {
    ok(x);
    expect((await readApk(x.apk)).info.commit).toBe('0123456789abcdef0123456789abcdef01234567');
  } },
  { flag: '--create-build-log', command: 'build', args: ['--create-build-log'], check: async (x) => {
    ok(x);
    expect(await readFile(join(x.dir, 'packages.log'), 'utf8')).toBe('x86_64|flagtest|flagtest|1.0.0-r0\n');
  } },
  { flag: '--git-repo-url, --license: the recipe file in the SBOM', command: 'build',
    args: ['--git-repo-url=https://github.com/example/recipes', '--license', 'Apache-2.0', '--git-commit=0123456789abcdef0123456789abcdef01234567'], check: async (x) => {
      ok(x);
      const sbom = JSON.parse(await fileFromApk(x.apk, 'var/lib/db/sbom/flagtest-1.0.0-r0.spdx.json')) as SpdxDocument;
      const recipe = sbom.packages.find((p) => p.name === 'flagtest.yaml');
      expect(recipe).toMatchObject({
        versionInfo: '0123456789abcdef0123456789abcdef01234567',
        downloadLocation: 'https://github.com/example/recipes',
        licenseDeclared: 'Apache-2.0',
        externalRefs: [{ referenceLocator: 'pkg:github/example/recipes@0123456789abcdef0123456789abcdef01234567#flagtest.yaml' }],
      });
      expect(sbom.relationships).toContainEqual({ spdxElementId: sbom.documentDescribes[0], relationshipType: 'DESCRIBED_BY', relatedSpdxElement: recipe?.SPDXID });
    } },
  { flag: '--generate-provenance', command: 'build', args: ['--generate-provenance', '--git-repo-url=https://github.com/example/recipes', '--git-commit', COMMIT], check: async (x) => {
    ok(x);
    const attest = join(x.out, 'x86_64', 'flagtest-1.0.0-r0.attest.tar.gz');
    const [entry, ...rest] = await readTarGz(attest);
    expect(rest).toEqual([]);
    expect(entry?.name).toBe('flagtest-1.0.0-r0.apk.intoto.json');
    const st = JSON.parse(entry!.text) as ProvenanceStatement;
    const sha256 = createHash('sha256').update(await readFile(x.apk)).digest('hex');
    expect(st).toMatchObject({
      _type: 'https://in-toto.io/Statement/v1',
      predicateType: 'https://slsa.dev/provenance/v1',
      subject: [{ name: 'flagtest-1.0.0-r0.apk', digest: { sha256 } }],
      predicate: {
        buildDefinition: {
          externalParameters: { recipe: 'flagtest.yaml', repository: 'https://github.com/example/recipes', commit: COMMIT, arch: 'x86_64' },
          internalParameters: { runner: 'bubblewrap' },
          resolvedDependencies: [{ name: 'flagtest.yaml', uri: 'git+https://github.com/example/recipes', digest: { gitCommit: COMMIT } }],
        },
      },
    });
    const { startedOn, finishedOn } = st.predicate.runDetails.metadata;
    expect(Date.parse(startedOn)).toBeLessThanOrEqual(Date.parse(finishedOn));
  } },
  { flag: '--generate-provenance with --verify-reproducible: the first build\'s attestation is kept', command: 'build', args: ['--generate-provenance', '--verify-reproducible'], check: async (x) => {
    ok(x);
    const [entry] = await readTarGz(join(x.out, 'x86_64', 'flagtest-1.0.0-r0.attest.tar.gz'));
    const sha256 = createHash('sha256').update(await readFile(x.apk)).digest('hex');
    expect((JSON.parse(entry!.text) as ProvenanceStatement).subject).toEqual([{ name: 'flagtest-1.0.0-r0.apk', digest: { sha256 } }]);
  } },
  { flag: '--generate-provenance off (default): no attestation', command: 'build', args: [], check: async (x) => {
    ok(x);
    expect((await readdir(join(x.out, 'x86_64'))).filter((f) => f.includes('attest'))).toEqual([]);
  } },
  { flag: '--dependency-log, --git-repo-url, --license', command: 'build',
    args: ['--dependency-log=@DIR/deps.json', '--git-repo-url', 'https://example.org/recipes', '--license=Apache-2.0'], check: async (x) => {
      ok(x);
      const log = JSON.parse(await readFile(join(x.dir, 'deps.json'), 'utf8')) as Record<string, unknown>;
      expect(log).toMatchObject({ recipe: { gitRepoUrl: 'https://example.org/recipes', license: 'Apache-2.0' }, arch: 'x86_64', packages: [] });
    } },
  { flag: '--cache-source', command: 'build', args: ['--cache-source=@DIR/pipelines'], check: async (x) => {
    ok(x);
    expect(await readFile(join(x.dir, 'cache', 'local', 'mark.yaml'), 'utf8')).toBe(PIPELINE);
  } },
  { flag: '--namespace', command: 'build', args: ['--namespace=wolfi'], check: async (x) => {
    ok(x);
    expect(await fileFromApk(x.apk, 'var/lib/db/sbom/flagtest-1.0.0-r0.spdx.json')).toContain('pkg:apk/wolfi/flagtest@1.0.0-r0');
  } },
  { flag: '--fail-on-lint-warning', command: 'build', args: ['--fail-on-lint-warning'], check: (x) => {
    expect(x.r.exitCode).toBe(1);
    expect(x.r.stderr).toMatch(/opt/);
    expect(existsSync(x.apk)).toBe(false);
  } },
  { flag: '--lint-warn (with --fail-on-lint-warning, still a warning)', command: 'build', args: ['--fail-on-lint-warning', '--lint-warn=opt'], check: (x) => ok(x) },
  { flag: '--timeout (wins over package.timeout: 1h)', command: 'build', args: ['--timeout=2s', '--env-file=slow.env'], check: (x) => {
    expect(x.r.exitCode).toBe(1);
    expect(x.r.stderr).toMatch(/exceeded --timeout \(2s\)/);
  } },
  { flag: '--timeout, --cpu, --memory, --disk win over package.timeout and package.resources', command: 'compile',
    args: ['--timeout=5m', '--cpu', '2', '--memory=3G', '--disk=20G'], check: (x) => {
      ok(x);
      expect(JSON.parse(x.r.stdout)).toMatchObject({ timeout: 300, resources: { cpu: '2', memory: '3G', disk: '20G' } });
    } },
  { flag: 'without them, the recipe\'s (--timeout=0 too)', command: 'compile', args: ['--timeout=0'], check: (x) => {
    ok(x);
    expect(JSON.parse(x.r.stdout)).toMatchObject({ timeout: 3600, resources: { cpu: '1', memory: '1G', disk: '1G' } });
  } },
  { flag: '--disk with a bad size → usage error naming the flag', command: 'build', args: ['--disk=lots'], check: (x) => {
    expect(x.r.exitCode).toBe(2);
    expect(x.r.stderr).toMatch(/--disk: "lots" is not/);
  } },
  { flag: '--log-level', command: 'build', args: ['--log-level=error'], check: (x) => {
    ok(x);
    expect(x.r.stderr).toBe('');
  } },
  // The shell itself (on a failed step, through a pty): test/build/interactive.test.ts.
  { flag: '--interactive / -i', command: 'build', args: ['-i'], check: (x) => {
    ok(x);
    expect(x.r.stderr).not.toMatch(/--interactive/);
  } },
  { flag: '--debug', command: 'build', args: ['--debug'], check: (x) => {
    ok(x);
    expect(x.r.stderr).toMatch(/^.*\+ mkdir -p/m);
  } },
  { flag: '--arch (a list)', command: 'compile', args: ['--arch=aarch64'], check: (x) => {
    ok(x);
    expect(JSON.parse(x.r.stdout)).toMatchObject({ arch: 'aarch64' });
  } },
  { flag: '--arch x86_64,amd64 --arch x86_64 (each arch once)', command: 'build', args: ['--arch', 'x86_64,amd64', '--arch', 'x86_64'], check: (x) => {
    ok(x);
    expect(x.r.stderr.match(/built .*flagtest-1\.0\.0-r0\.apk/g)).toHaveLength(1);
  } },
  { flag: '--vars-file (the file wins over the recipe\'s vars)', command: 'build', args: ['--vars-file=vars.yaml'], check: async (x) => {
    ok(x);
    expect(await shared(x, 'env')).toContain('OPTION=from-vars-file\n');
  } },
  { flag: '--vars-file with --build-option (the option wins)', command: 'compile', args: ['--vars-file', 'vars.yaml', '--build-option=extra'], check: (x) => {
    ok(x);
    expect(x.r.stdout).toContain('OPTION=enabled');
  } },
  { flag: '--vars-file not a string map → file:line:col', command: 'compile', args: ['--vars-file=bad-vars.yaml'], check: (x) => {
    expect(x.r.exitCode).toBe(1);
    expect(x.r.stderr).toBe('bad-vars.yaml:3:3: nested: expected a string, found a mapping');
  } },
  { flag: '--vars-file missing → names the flag and file', command: 'compile', args: ['--vars-file=nope.yaml'], check: (x) => {
    expect(x.r.exitCode).toBe(2);
    expect(x.r.stderr).toMatch(/--vars-file: nope\.yaml: no such file/);
  } },
  { flag: '--overlay-binsh, --trace: refused clearly', command: 'build', args: ['--trace=t.json'], check: (x) => {
    expect(x.r.exitCode).toBe(2);
    expect(x.r.stderr).toMatch(/--trace: melange's flag is accepted but builder does not support it/);
  } },
  { flag: '--log-policy builtin:stderr', command: 'build', args: ['--log-policy=builtin:stderr'], check: (x) => ok(x) },
  { flag: '--env-file with a malformed line → file:line and the line', command: 'compile', args: ['--env-file=bad.env'], check: (x) => {
    expect(x.r.exitCode).toBe(1);
    expect(x.r.stderr).toBe('error: bad.env:2: expected NAME=value\n  this line is not an assignment');
  } },
  { flag: 'unknown flag → usage error with the closest flag', command: 'build', args: ['--clenup'], check: (x) => {
    expect(x.r.exitCode).toBe(2);
    expect(x.r.stderr).toMatch(/unknown option '--clenup'[\s\S]*Did you mean --cleanup\?/);
  } },
];

async function keptWorkspace(x: Run): Promise<void> {
  ok(x);
  const m = /workspace kept at (\S+)/.exec(x.r.stderr);
  expect(m, x.r.stderr).not.toBeNull();
  expect(existsSync(join(m![1]!, 'workspace'))).toBe(true);
  const { rm } = await import('node:fs/promises');
  await rm(m![1]!, { recursive: true, force: true });
}

/**
 * melange's flags (pkg/cli/build.go, test.go, compile.go, flags_common.go, and the root --log-level). Each is
 * checked by its effect in ROWS above or, where it needs a repository and a Debian root, in
 * wolfi-makefile.test.ts (W); the qemu-only ones (Q) in the qemu runner's tests.
 */
const MELANGE_FLAGS: Record<'build' | 'test' | 'compile', string[]> = {
  build: [
    '--apk-cache-dir', '--arch', '--breakpoint-label', '--build-date', '--build-option', '--cache-dir', '--cache-source', '--cleanup',
    '--continue-label', '--cpu', '--cpumodel', '--create-build-log', '--debug', '--debug-runner', '--dependency-log', '--disk',
    '--empty-workspace', '--env-file', '--fail-on-lint-warning', '--generate-index', '--generate-provenance', '--git-commit',
    '--git-repo-url', '--guest-dir', '--ignore-signatures', '--interactive', '-i', '--keyring-append', '-k', '--license',
    '--lint-require', '--lint-warn', '--log-level', '--log-policy', '--memory', '--namespace', '--out-dir', '--overlay-binsh',
    '--package-append', '--persist-lint-results', '--pipeline-dir', '--pipeline-dirs', '--repository-append', '-r', '--rm', '--runner',
    '--signing-key', '--source-dir', '--strip-origin-name', '--timeout', '--trace', '--vars-file', '--workspace-dir',
  ],
  test: [
    '--apk-cache-dir', '--arch', '--cache-dir', '--cache-source', '--cpu', '--cpumodel', '--debug', '--debug-runner', '--disk',
    '--env-file', '--ignore-signatures', '--interactive', '-i', '--keyring-append', '-k', '--log-level', '--memory', '--package-append',
    '--pipeline-dirs', '--repository-append', '-r', '--rm', '--runner', '--source-dir', '--test-option', '--test-package-append',
    '--timeout', '--workspace-dir',
  ],
  compile: [
    '--apk-cache-dir', '--arch', '--build-date', '--build-option', '--cache-dir', '--cache-source', '--cpu', '--create-build-log',
    '--debug', '--debug-runner', '--dependency-log', '--empty-workspace', '--env-file', '--fail-on-lint-warning', '--generate-index',
    '--generate-provenance', '--git-commit', '--git-repo-url', '--interactive', '-i', '--keyring-append', '-k', '--license',
    '--log-level', '--log-policy', '--memory', '--namespace', '--out-dir', '--package-append', '--pipeline-dir', '--repository-append',
    '-r', '--rm', '--runner', '--signing-key', '--source-dir', '--strip-origin-name', '--timeout', '--vars-file', '--workspace-dir',
  ],
};

describe("melange's flags are all accepted", () => {
  it.each(Object.entries(MELANGE_FLAGS))('builder %s --help lists every one', async (command, flags) => {
    const help = (await builder([command, '--help'])).stdout;
    const missing = flags.filter((f) => !new RegExp(`(^|[ ,])${f}([ ,=]|$)`, 'm').test(help));
    expect(missing).toEqual([]);
  });
});

describe("melange's flags, by their effect", () => {
  it.each(ROWS.map((row) => [row.flag, row] as const))('%s', async (_name, row) => {
    const x = await run(row.command, row.args);
    await row.check(x);
    expect(hasStackTrace(x.r.all)).toBe(false);
  }, 120_000);

  it('an architecture this machine cannot run names the missing handler', async () => {
    const binfmt = await tempDir();
    expect(() => checkArchRunnable('aarch64', binfmt)).toThrow(`no binfmt_misc handler ${binfmt}/qemu-aarch64 (install qemu-user-static`);
    await writeFile(join(binfmt, 'qemu-aarch64'), 'enabled\n');
    expect(() => checkArchRunnable('aarch64', binfmt)).not.toThrow();
    expect(() => checkArchRunnable('x86_64', binfmt)).not.toThrow();
  });
});
