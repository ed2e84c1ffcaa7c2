// melange's smaller built-in pipelines and the inputs and needs builtins.test.ts does not cover.
// Real runs: xcover/ensure (it only reads the report, with jq), copy, move, split/docs, meson/test (with
// meson), autoconf/make-install's targets, split/dev's prefix. Checked by their generated commands only:
// - xcover/profile, xcover/wait, xcover/status, xcover/stop: xcover is a Chainguard eBPF tool Debian does
//   not package (and it needs CAP_SYS_ADMIN).
// - llvm/covreport: the .profraw data it reads comes from a clang -fprofile-instr-generate build; clang is
//   not among the test tools.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/tmp.ts';
import { compile, fail, files, makeProject, succeed } from './builtin-project.ts';
import { hasTool } from './sandbox.ts';

const tempDir = useTempDirs();
const HAVE_JQ = await hasTool('jq');
const HAVE_MESON = (await hasTool('meson')) && (await hasTool('ninja'));
const project = async (files: Record<string, string> = {}) => makeProject(await tempDir(), files);

describe('xcover', () => {
  const ensure = (min: string) => `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: xcover/ensure
    with:
      min-coverage: "${min}"
`;
  it.skipIf(!HAVE_JQ)('xcover/ensure prints the report coverage and gates on min-coverage (needs jq)', async () => {
    const report = { 'xcover-report.json': JSON.stringify({ cov_by_func: 72.5, funcs_traced: [], funcs_ack: [] }) };
    expect((await succeed(await project(report), ensure('70'))).log).toContain('Coverage is 72.5 %');
    expect(await fail(await project(report), ensure('80'))).toContain('Coverage 72.5 % is below the expected minimum 80');
    expect(await fail(await project(), ensure(''))).toContain('there is no xcover-report.json');
  });

  it('xcover/profile, wait, status and stop run xcover with their inputs and add the package they name', async () => {
    const plan = compile(await project(), `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: xcover/profile
    with:
      executable-path: /usr/bin/hello
      exclude-functions: ^runtime\\.
      scope: binary
  - uses: xcover/wait
    with:
      wait-timeout: "5"
  - uses: xcover/status
  - uses: xcover/stop
`);
    expect(plan.environment.packages).toEqual(['busybox', 'xcover']);
    const [profile, wait, status, stop] = plan.packages[0]!.steps.map((s) => s.script);
    expect(profile).toBe(
      "xcover run \\\n  --path '/usr/bin/hello' \\\n  --exclude='^runtime\\.' \\\n  --include='' \\\n  --scope='binary' \\\n" +
        "  --log-level='info' \\\n  --verbose='false' \\\n  --status \\\n  --detach\n" +
        "# A barrier: the program about to be tested is traced once this returns.\nxcover wait --timeout '60s'\n",
    );
    expect(wait).toBe("xcover wait --timeout '5s'\n");
    expect(status).toBe('xcover status\n');
    expect(stop).toBe('xcover stop\n');
  });
});

describe('llvm/covreport (generated command only: see the top of the file)', () => {
  it('merges the profiles and reports on the object, adding the llvm package', async () => {
    const plan = compile(await project(), `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: llvm/covreport
    with:
      object: hello
      ignore-filename-regex: /usr/include/.*
`);
    expect(plan.environment.packages).toEqual(['llvm-19']);
    const script = plan.packages[0]!.steps[0]!.script;
    expect(script).toContain('llvm-profdata merge --sparse default_*.profraw --output default.profdata\n');
    expect(script).toContain("obj='hello'\n");
    expect(script).toContain("--ignore-filename-regex='/usr/include/.*'");
    expect(script).toContain('--summary-only 2>/dev/null | tail -1 | awk \'{print $7}\'');
  });
});

describe('copy and move', () => {
  it('copy puts a /home/build path under its last component in the package (as melange), or at dest; move moves', async () => {
    const p = await project({ 'build/usr/share/hello/a.txt': 'a\n', 'build/usr/share/hello/b.txt': 'b\n', 'm/c.txt': 'c\n' });
    const result = await succeed(p, `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: copy
    with:
      src: /home/build/build/usr/share/hello
  - uses: copy
    with:
      src: build/usr/share/hello/a.txt
      dest: \${{targets.contextdir}}/etc/a.conf
      opts: -p
  - uses: move
    with:
      modroot: m
      src: c.txt
      dest: \${{targets.contextdir}}/etc/c.conf
`);
    expect(await files(result.out('hello'))).toEqual(['etc/a.conf', 'etc/c.conf', 'hello/a.txt', 'hello/b.txt']);
    expect(await files(join(result.workspace.dir, 'm'))).toEqual([]);
    expect(await files(join(result.workspace.dir, 'build'))).toEqual(['usr/share/hello/a.txt', 'usr/share/hello/b.txt']);
  });
});

describe('split/docs', () => {
  it('moves usr/share/doc and usr/local/share/doc contents into the subpackage', async () => {
    const result = await succeed(await project(), `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - runs: |
      mkdir -p \${{targets.destdir}}/usr/share/doc/hello \${{targets.destdir}}/usr/local/share/doc/extra \${{targets.destdir}}/usr/bin
      echo readme > \${{targets.destdir}}/usr/share/doc/hello/README
      echo extra > \${{targets.destdir}}/usr/local/share/doc/extra/NOTES
      echo bin > \${{targets.destdir}}/usr/bin/hello
subpackages:
  - name: hello-doc
    pipeline:
      - uses: split/docs
`);
    expect(await files(result.out('hello'))).toEqual(['usr/bin/hello']);
    expect(await files(result.out('hello-doc'))).toEqual(['usr/share/doc/extra/NOTES', 'usr/share/doc/hello/README']);
  });
});

describe('meson/test', () => {
  it.skipIf(!HAVE_MESON)('runs the project tests in the build directory (needs meson and ninja)', async () => {
    const p = await project({
      'meson.build': "project('hello', 'c')\nexe = executable('hello', 'hello.c')\ntest('says hello', exe)\n",
      'hello.c': '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n',
    });
    const result = await succeed(p, `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: meson/configure
  - uses: meson/compile
  - uses: meson/test
`);
    expect(result.log).toMatch(/says hello\s+OK/);
  });
});

describe("inputs and needs aligned with melange's", () => {
  it('autoconf/make-install runs the targets given, split/dev takes another prefix', async () => {
    const p = await project({
      Makefile: 'install-strip:\n\tmkdir -p $(DESTDIR)/opt/hello/include $(DESTDIR)/opt/hello/bin\n' +
        '\techo h > $(DESTDIR)/opt/hello/include/hello.h\n\techo b > $(DESTDIR)/opt/hello/bin/hello\n',
    });
    const result = await succeed(p, `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: autoconf/make-install
    with:
      targets: install-strip
subpackages:
  - name: hello-dev
    pipeline:
      - uses: split/dev
        with:
          prefix: opt/hello
`);
    expect(await files(result.out('hello'))).toEqual(['opt/hello/bin/hello']);
    expect(await files(result.out('hello-dev'))).toEqual(['opt/hello/include/hello.h']);
  });

  it("adds the packages melange's pipelines need", async () => {
    const needs = (uses: string, withText = '') => {
      const recipe = `package: {name: hello, version: "1.0", epoch: 0}\npipeline:\n  - uses: ${uses}\n${withText}`;
      return compile({ dir: '/nonexistent', src: '/nonexistent/src', cache: '/nonexistent/cache' }, recipe).environment.packages;
    };
    expect(needs('git-checkout', '    with:\n      repository: https://example.com/x.git\n      tag: v1\n      expected-commit: 0123456789abcdef0123456789abcdef01234567\n')).toContain('git');
    expect(needs('go/build', '    with:\n      packages: .\n      output: x\n')).toContain('build-base');
    expect(needs('go/install', '    with:\n      package: example.com/x\n')).toContain('build-base');
    expect(needs('cargo/build')).toContain('build-base');
    expect(needs('autoconf/configure')).toContain('libtool');
    expect(needs('cmake/install')).toContain('ninja');
    expect(needs('strip')).toEqual(['binutils', 'scanelf']);
  });

  it('fetch takes a reason (it documents the recipe)', async () => {
    const p = await project();
    const archive = join(p.dir, 'a.tar.gz');
    await writeFile(archive, 'not used');
    const plan = compile(p, `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: fetch
    with:
      uri: file://${archive}
      expected-none: true
      reason: upstream publishes no checksums
`);
    expect(plan.packages[0]!.steps[0]!.uses).toBe('fetch');
    expect(await readFile(archive, 'utf8')).toBe('not used');
  });
});
