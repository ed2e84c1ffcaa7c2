// Every built-in pipeline runs for real in the Bubblewrap sandbox on a small project made by the test.
// Toolchains that are not installed here (go, cargo on the sandbox PATH, meson, ruby) are checked by their
// generated commands and their real run is skipped, saying which tool is missing.
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/tmp.ts';
import { build, compile, files, makeProject, type Project, succeed, tree, writeFiles } from './builtin-project.ts';
import { hasTool, toolRuns } from './sandbox.ts';

const tempDir = useTempDirs();

const HAVE = {
  patch: await hasTool('patch'),
  cmake: await hasTool('cmake'),
  meson: (await hasTool('meson')) && (await hasTool('ninja')),
  go: await hasTool('go'),
  cargo: await hasTool('cargo'),
  gem: (await hasTool('gem')) && (await hasTool('ruby')),
  perl: await toolRuns('perl', ['-MExtUtils::MakeMaker', '-e', '1']),
  python: await toolRuns('python3', ['-c', 'import setuptools']),
};

const project = async (files: Record<string, string> = {}): Promise<Project> => makeProject(await tempDir(), files);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

// A tiny autoconf-style project: a hand-written configure that fills in Makefile.in.
const AUTOCONF_PROJECT: Record<string, string> = {
  'hello-1.0/configure': `#!/bin/sh
prefix=/usr
greeting=hello
for arg; do
  case $arg in
    --prefix=*) prefix=\${arg#*=} ;;
    --with-greeting=*) greeting=\${arg#*=} ;;
  esac
  echo "$arg" >> config.args
done
sed -e "s|@PREFIX@|$prefix|" -e "s|@GREETING@|$greeting|" Makefile.in > Makefile
`,
  'hello-1.0/Makefile.in': `PREFIX = @PREFIX@
all: hello
hello: hello.c
\t$(CC) -g -O1 -DGREETING='"@GREETING@"' -o hello hello.c
install: hello
\tmkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib
\tcp hello $(DESTDIR)$(PREFIX)/bin/hello
\techo libtool-archive > $(DESTDIR)$(PREFIX)/lib/libhello.la
`,
  'hello-1.0/hello.c': '#include <stdio.h>\nint main(void) { puts(GREETING); return 0; }\n',
};

async function autoconfTarball(p: Project): Promise<{ uri: string; sha: string }> {
  const staging = join(p.dir, 'staging');
  await writeFiles(staging, AUTOCONF_PROJECT);
  await chmod(join(staging, 'hello-1.0', 'configure'), 0o755);
  const tarball = join(p.dir, 'hello-1.0.tar.gz');
  await execa('tar', ['-czf', tarball, '-C', staging, 'hello-1.0']);
  return { uri: pathToFileURL(tarball).href, sha: sha256(await readFile(tarball)) };
}

async function hasSection(file: string, section: string): Promise<boolean> {
  const { stdout } = await execa('objdump', ['-h', file]);
  return stdout.split('\n').some((l) => l.trim().split(/\s+/)[1] === section);
}

describe('built-in pipelines in the Bubblewrap sandbox', () => {
  it('fetch (file:// + sha256), autoconf/configure, autoconf/make, autoconf/make-install, split/debug', async () => {
    const p = await project();
    const { uri, sha } = await autoconfTarball(p);
    const result = await succeed(
      p,
      `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: fetch
    with:
      uri: ${uri}
      expected-sha256: ${sha}
  - uses: fetch
    with:
      uri: ${uri}
      expected-sha256: ${sha}
      extract: false
  - uses: autoconf/configure
    with:
      opts: --with-greeting=built-by-builder
  - uses: autoconf/make
  - uses: autoconf/make-install
subpackages:
  - name: hello-dbg
    pipeline:
      - uses: split/debug
`,
    );
    // The archive was fetched on the host into the cache, under its checksum, and extracted in the sandbox.
    expect(await readdir(p.cache)).toContain(`sha256:${sha}`);
    expect(await readFile(join(result.workspace.dir, 'hello.c'), 'utf8')).toContain('puts(GREETING)');
    expect((await lstat(join(result.workspace.dir, 'hello-1.0.tar.gz'))).isFile()).toBe(true);
    expect(await readFile(join(result.workspace.dir, 'config.args'), 'utf8')).toBe(
      [
        '--host=x86_64-pc-linux-gnu', '--build=x86_64-pc-linux-gnu', '--prefix=/usr', '--sysconfdir=/etc', '--libdir=/usr/lib',
        '--mandir=/usr/share/man', '--infodir=/usr/share/info', '--localstatedir=/var', '--with-greeting=built-by-builder', '',
      ].join('\n'),
    );
    // make-install put the program in the package and deleted the libtool archive.
    expect(await files(result.out('hello'))).toEqual(['usr/bin/hello']);
    const hello = join(result.out('hello'), 'usr/bin/hello');
    expect((await execa(hello)).stdout).toBe('built-by-builder');
    // split/debug moved the debug information out and linked it.
    expect(await files(result.out('hello-dbg'))).toEqual(['usr/lib/debug/usr/bin/hello.debug']);
    expect(await hasSection(hello, '.debug_info')).toBe(false);
    expect(await hasSection(hello, '.gnu_debuglink')).toBe(true);
    expect(await hasSection(join(result.out('hello-dbg'), 'usr/lib/debug/usr/bin/hello.debug'), '.debug_info')).toBe(true);
  });

  it('fetch with expected-none and git-checkout with sparse-paths and a branch-tip pin', async () => {
    const p = await project();
    const { uri, sha } = await autoconfTarball(p);
    const env = { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com', GIT_CONFIG_GLOBAL: '/dev/null' };
    const repo = join(p.dir, 'mono');
    await execa('git', ['init', '--quiet', '--initial-branch=release', repo], { env });
    await writeFiles(repo, { 'README': 'top\n', 'tools/build.sh': 'echo build\n', 'web/index.html': '<html>\n' });
    await execa('git', ['add', '.'], { cwd: repo, env });
    await execa('git', ['commit', '--quiet', '-m', 'tree'], { cwd: repo, env });
    const commit = (await execa('git', ['rev-parse', 'HEAD'], { cwd: repo, env })).stdout.trim();
    const result = await succeed(
      p,
      `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: fetch
    with:
      uri: ${uri}
      expected-none: true
      directory: unpacked
  - uses: git-checkout
    with:
      repository: ${pathToFileURL(repo).href}
      branch: release
      expected-commit: ${commit}
      expected-commit-is-branch-tip: true
      sparse-paths: tools
      destination: mono
`,
    );
    // Downloaded without a checksum: cached under the sha256 of what arrived, and extracted in the sandbox.
    expect(await readdir(p.cache)).toContain(`sha256:${sha}`);
    expect(await readFile(join(result.workspace.dir, 'unpacked', 'hello.c'), 'utf8')).toContain('puts(GREETING)');
    expect(await readFile(join(result.workspace.dir, 'mono', 'tools', 'build.sh'), 'utf8')).toBe('echo build\n');
    expect((await readdir(join(result.workspace.dir, 'mono'))).sort()).toEqual(['.git', 'README', 'tools']);
  });

  it('strip, with fetch reusing the cached archive', async () => {
    const p = await project();
    const { uri, sha } = await autoconfTarball(p);
    // Pre-seed the cache and remove the original: the fetch must come from the cache.
    await mkdir(p.cache, { recursive: true });
    await writeFile(join(p.cache, `sha256:${sha}`), await readFile(new URL(uri)));
    await execa('rm', [new URL(uri).pathname]);
    const result = await succeed(
      p,
      `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: fetch
    with: {uri: "${uri}", expected-sha256: "${sha}", delete: true}
  - uses: autoconf/configure
  - uses: autoconf/make
  - uses: autoconf/make-install
  - uses: strip
`,
    );
    const hello = join(result.out('hello'), 'usr/bin/hello');
    expect(await hasSection(hello, '.debug_info')).toBe(false);
    expect((await execa(hello)).stdout).toBe('hello');
    expect(result.log).toContain(`strip: /home/build/melange-out/hello/usr/bin/hello`);
    // delete: true leaves no copy of the archive in the workspace.
    expect(await readdir(result.workspace.dir)).not.toContain('hello-1.0.tar.gz');
  });

  it('split/static, split/dev, split/manpages, split/infodir, split/locales, split/lib, split/bin, split/alldocs', async () => {
    const p = await project();
    const result = await succeed(
      p,
      `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - working-directory: \${{targets.destdir}}
    runs: |
      mkdir -p usr/include usr/lib/pkgconfig usr/bin usr/share/man/man1 usr/share/info usr/share/locale/de/LC_MESSAGES usr/share/doc/hello
      echo 'int hello(void);' > usr/include/hello.h
      echo 'Name: hello' > usr/lib/pkgconfig/hello.pc
      echo archive > usr/lib/libhello.a
      echo library > usr/lib/libhello.so.1.0
      echo ssl > usr/lib/libssl.so.3
      mkdir -p usr/lib64 && echo extra > usr/lib64/libextra.so.2
      ln -s libhello.so.1.0 usr/lib/libhello.so.1
      ln -s libhello.so.1 usr/lib/libhello.so
      echo program > usr/bin/hello
      echo script > usr/bin/hello-config
      echo manual > usr/share/man/man1/hello.1
      echo info > usr/share/info/hello.info
      echo index > usr/share/info/dir
      echo catalogue > usr/share/locale/de/LC_MESSAGES/hello.mo
      echo readme > usr/share/doc/hello/README
subpackages:
  - name: hello-static
    pipeline: [{uses: split/static}]
  - name: hello-dev
    pipeline: [{uses: split/dev}]
  - name: hello-doc-man
    pipeline: [{uses: split/manpages}]
  - name: hello-info
    pipeline: [{uses: split/infodir}]
  - name: hello-lang
    pipeline: [{uses: split/locales}]
  - name: hello-libssl
    pipeline: [{uses: split/lib, with: {patterns: ssl}}]
  - name: hello-libs
    pipeline: [{uses: split/lib}]
  - name: hello-lib64
    pipeline: [{uses: split/lib, with: {paths: usr/lib64}}]
  - name: hello-bin
    pipeline: [{uses: split/bin}]
  - name: hello-doc
    pipeline: [{uses: split/alldocs}]
  - name: hello-man-again
    pipeline:
      - uses: split/manpages
        with:
          package: hello-doc-man
`,
    );
    expect(await tree(result.out('hello'))).toEqual([]);
    expect(await files(result.out('hello-static'))).toEqual(['usr/lib/libhello.a']);
    expect(await files(result.out('hello-dev'))).toEqual([
      'usr/bin/hello-config',
      'usr/include/hello.h',
      'usr/lib/libhello.so -> libhello.so.1',
      'usr/lib/pkgconfig/hello.pc',
    ]);
    expect(await files(result.out('hello-doc-man'))).toEqual([]);
    expect(await files(result.out('hello-man-again'))).toEqual(['usr/share/man/man1/hello.1']);
    expect(await files(result.out('hello-info'))).toEqual(['usr/share/info/hello.info']);
    expect(await files(result.out('hello-lang'))).toEqual(['usr/share/locale/de/LC_MESSAGES/hello.mo']);
    expect(await files(result.out('hello-libs'))).toEqual(['usr/lib/libhello.so.1 -> libhello.so.1.0', 'usr/lib/libhello.so.1.0']);
    // patterns narrows the move; paths adds directories to lib and usr/lib.
    expect(await files(result.out('hello-libssl'))).toEqual(['usr/lib/libssl.so.3']);
    expect(await files(result.out('hello-lib64'))).toEqual(['usr/lib64/libextra.so.2']);
    expect(await files(result.out('hello-bin'))).toEqual(['usr/bin/hello']);
    expect(await files(result.out('hello-doc'))).toEqual(['usr/share/doc/hello/README']);
  });

  it('git-checkout (host clone of a local repository, tag and expected-commit), git-am', async () => {
    const p = await project();
    const env = { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com', GIT_CONFIG_GLOBAL: '/dev/null' };
    const git = (cwd: string, ...args: string[]) => execa('git', args, { cwd, env }).then((r) => r.stdout.trim());
    const repo = join(p.dir, 'upstream');
    await execa('git', ['init', '--quiet', '--initial-branch=main', repo], { env });
    await writeFile(join(repo, 'greeting'), 'one\ntwo\nthree\n');
    await git(repo, 'add', '.');
    await git(repo, 'commit', '--quiet', '-m', 'initial');
    await git(repo, 'tag', '-a', 'v1.0', '-m', 'v1.0');
    const commit = await git(repo, 'rev-parse', 'HEAD');
    // A mailbox patch for git-am, made on a throwaway branch.
    await git(repo, 'checkout', '--quiet', '-b', 'am');
    await writeFile(join(repo, 'extra'), 'from git am\n');
    await git(repo, 'add', 'extra');
    await git(repo, 'commit', '--quiet', '-m', 'Add extra file');
    await git(repo, 'format-patch', '--quiet', '-1', '-o', p.src);
    await git(repo, 'checkout', '--quiet', 'main');
    const result = await succeed(
      p,
      `package: {name: co, version: "1.0", epoch: 0}
pipeline:
  - uses: git-checkout
    with:
      repository: ${repo}
      tag: v\${{package.version}}
      expected-commit: ${commit}
      destination: src
  - working-directory: src
    pipeline:
      - uses: git-am
        with:
          patches: ../0001-Add-extra-file.patch
      - runs: |
          cp greeting extra "\${{targets.destdir}}/"
          git log --format=%s > "\${{targets.destdir}}/log"
`,
    );
    expect(await readdir(join(p.cache, 'git'))).toHaveLength(1);
    expect(await files(result.out('co'))).toEqual(['extra', 'greeting', 'log']);
    expect(await readFile(join(result.out('co'), 'greeting'), 'utf8')).toBe('one\ntwo\nthree\n');
    expect(await readFile(join(result.out('co'), 'extra'), 'utf8')).toBe('from git am\n');
    expect(await readFile(join(result.out('co'), 'log'), 'utf8')).toBe('Add extra file\ninitial\n');
  });

  it.skipIf(!HAVE.patch)('patch, from a list and from a quilt series (needs patch)', async () => {
    const p = await project({
      'greeting': 'one\ntwo\nthree\n',
      'fix.patch': '--- a/greeting\n+++ b/greeting\n@@ -1,3 +1,3 @@\n-one\n+ONE\n two\n three\n',
      'patches/series': '# quilt series\n\npatches/second.patch\n',
      'patches/second.patch': '--- greeting\n+++ greeting\n@@ -1,3 +1,3 @@\n ONE\n-two\n+TWO\n three\n',
    });
    const result = await succeed(
      p,
      `package: {name: pt, version: "1.0", epoch: 0}
pipeline:
  - uses: patch
    with:
      patches: fix.patch
  - uses: patch
    with:
      series: patches/series
      strip-components: 0
  - runs: cp greeting "\${{targets.destdir}}/"
`,
    );
    expect(await readFile(join(result.out('pt'), 'greeting'), 'utf8')).toBe('ONE\nTWO\nthree\n');
    expect(result.log).toContain('patch: applying fix.patch');
    expect(result.log).toContain('patch: applying patches/second.patch');
    // A patch that does not apply fails the step, and so the build.
    const bad = await project({ 'file.txt': 'a\n', 'bad.patch': '--- a/file.txt\n+++ b/file.txt\n@@ -1 +1 @@\n-zzz\n+b\n' });
    const failed = await build(bad, `package: {name: bad, version: "1", epoch: 0}\npipeline:\n  - uses: patch\n    with: {patches: bad.patch, fuzz: 0}\n`);
    try {
      expect(failed.exitCode).not.toBe(0);
      expect(failed.log).toContain('patch: applying bad.patch');
    } finally {
      await failed.workspace.remove();
    }
  });

  describe('cmake', () => {
    const RECIPE = `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: cmake/configure
    with: {opts: -DGREETING=cmake-built}
  - uses: cmake/build
  - uses: cmake/install
`;
    it('generates cmake configure, build and install commands', async () => {
      const steps = compile(await project(), RECIPE).packages[0]!.steps.map((s) => s.script);
      expect(steps[0]).toMatch(/cmake -B 'output' -G "\$generator" \\\n\s+-DCMAKE_INSTALL_PREFIX=\/usr \\\n\s+-DCMAKE_INSTALL_LIBDIR=lib \\\n\s+-DCMAKE_BUILD_TYPE=Release \\\n\s+-DGREETING=cmake-built/);
      expect(steps[1]).toContain("cmake --build 'output'");
      expect(steps[2]).toContain("DESTDIR='/home/build/melange-out/hello' cmake --install 'output'");
    });
    it.skipIf(!HAVE.cmake)('builds a CMake project for real (needs cmake)', async () => {
      const p = await project({
        'CMakeLists.txt': 'cmake_minimum_required(VERSION 3.10)\nproject(hello C)\nadd_executable(hello hello.c)\ntarget_compile_definitions(hello PRIVATE GREETING="${GREETING}")\ninstall(TARGETS hello DESTINATION bin)\n',
        'hello.c': '#include <stdio.h>\nint main(void) { puts(GREETING); return 0; }\n',
      });
      const result = await succeed(p, RECIPE);
      expect(await files(result.out('hello'))).toEqual(['usr/bin/hello']);
      expect((await execa(join(result.out('hello'), 'usr/bin/hello'))).stdout).toBe('cmake-built');
    });
  });

  describe('meson', () => {
    const RECIPE = `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: meson/configure
  - uses: meson/compile
  - uses: meson/install
`;
    it('generates meson setup, compile and install commands', async () => {
      const steps = compile(await project(), RECIPE).packages[0]!.steps.map((s) => s.script);
      expect(steps[0]).toMatch(/^meson setup \. 'output' \\\n\s+--prefix=\/usr \\\n\s+--libdir=lib \\\n\s+--buildtype=plain \\\n\s+--wrap-mode=nodownload/);
      expect(steps[1]).toContain("meson compile -C 'output'");
      expect(steps[2]).toContain("DESTDIR='/home/build/melange-out/hello' meson install -C 'output' --no-rebuild");
    });
    it.skipIf(!HAVE.meson)('builds a Meson project for real (needs meson and ninja)', async () => {
      const p = await project({
        'meson.build': "project('hello', 'c')\nexecutable('hello', 'hello.c', install: true)\n",
        'hello.c': '#include <stdio.h>\nint main(void) { puts("meson-built"); return 0; }\n',
      });
      const result = await succeed(p, RECIPE);
      expect(await files(result.out('hello'))).toEqual(['usr/bin/hello']);
      expect((await execa(join(result.out('hello'), 'usr/bin/hello'))).stdout).toBe('meson-built');
    });
  });

  describe('go', () => {
    const RECIPE = `package: {name: hello, version: "1.0", epoch: 0}
environment:
  environment:
    GOTOOLCHAIN: local
    GOFLAGS: -mod=mod
    GOPROXY: "off"
pipeline:
  - uses: go/build
    with:
      packages: .
      output: hello
      ldflags: -X main.greeting=go-built
subpackages:
  - name: hello-installed
    pipeline:
      - uses: go/install
        with:
          package: .
`;
    it('generates go build and go install commands', async () => {
      const plan = compile(await project(), RECIPE);
      expect(plan.environment.packages).toEqual(['go', 'busybox', 'ca-certificates-bundle', 'build-base', 'git']);
      expect(plan.packages[0]!.steps[0]!.script).toMatch(
        /go build \\\n\s+-o '\/home\/build\/melange-out\/hello\/usr\/bin\/hello' \\\n\s+-tags "\$tags" \\\n\s+-ldflags '-w -X main.greeting=go-built' \\\n\s+-buildmode 'default' \\\n\s+-trimpath \\\n\s+ \./,
      );
      expect(plan.packages[1]!.steps[0]!.script).toContain("tags='netgo,osusergo'\n");
      expect(plan.packages[1]!.steps[0]!.script).toContain("go install -tags \"$tags\" -ldflags '-w ' -trimpath \\\n  '.'\"$version\"");
    });
    it.skipIf(!HAVE.go)('builds a Go program for real (needs go)', async () => {
      const p = await project({
        'go.mod': 'module example.com/hello\n\ngo 1.19\n',
        'main.go': 'package main\n\nimport "fmt"\n\nvar greeting = "hello"\n\nfunc main() { fmt.Println(greeting) }\n',
      });
      const result = await succeed(p, RECIPE);
      expect((await execa(join(result.out('hello'), 'usr/bin/hello'))).stdout).toBe('go-built');
      expect(await files(result.out('hello-installed'))).toEqual(['usr/bin/hello']);
    });
  });

  describe('cargo', () => {
    const RECIPE = `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: cargo/build
    with:
      output: hello
`;
    it('generates the cargo build and install commands', async () => {
      const script = compile(await project(), RECIPE).packages[0]!.steps[0]!.script;
      expect(script).toContain('cargo $build -j "$jobs" --release');
      expect(script).toContain("install -m755 'target/release/hello' \"$dest/\"");
      expect(script).toContain("dest='/home/build/melange-out/hello/usr/bin'");
    });
    it.skipIf(!HAVE.cargo)('builds a Rust program for real (needs cargo on the sandbox PATH)', async () => {
      const p = await project({
        'Cargo.toml': '[package]\nname = "hello"\nversion = "1.0.0"\nedition = "2021"\n',
        'src/main.rs': 'fn main() { println!("cargo-built"); }\n',
      });
      const result = await succeed(p, RECIPE);
      expect((await execa(join(result.out('hello'), 'usr/bin/hello'))).stdout).toBe('cargo-built');
    });
  });

  describe('python', () => {
    const RECIPE = `package: {name: py3-hellopy, version: "1.0", epoch: 0}
pipeline:
  - uses: python/build
  - uses: python/install
  - uses: python/import
    with:
      import: json
      imports: |
        import os  # comments are fine
        from os import path
`;
    it('generates the build, install and import commands', async () => {
      const steps = compile(await project(), RECIPE).packages[0]!.steps.map((s) => s.script);
      expect(steps[0]).toContain('"$py" setup.py build');
      expect(steps[1]).toContain(`"$py" setup.py install --prefix=/usr --root="$root"`);
      expect(steps[2]).toContain('import os  # comments are fine\nfrom os import path\n');
    });
    it.skipIf(!HAVE.python)('builds, installs and imports a Python package for real (needs python3 with setuptools)', async () => {
      const p = await project({
        'setup.py': "from setuptools import setup\nsetup(name='hellopy', version='1.0', py_modules=['hellopy'])\n",
        'hellopy.py': 'GREETING = "python-built"\n',
      });
      const result = await succeed(p, RECIPE);
      const installed = (await files(result.out('py3-hellopy'))).filter((f) => f.endsWith('/hellopy.py'));
      expect(installed).toHaveLength(1);
      // Debian's own Python puts a /usr prefix under /usr/local; distributions built for melange do not.
      expect(installed[0]).toMatch(/^usr\/(local\/)?lib\/python3[^/]*\/(site|dist)-packages\/hellopy\.py$/);
      expect(result.log).toContain('python/import: import json: PASS');
      expect(result.log).toContain('python/import: from os import path: PASS');
      const failing = await build(await project(), `package: {name: x, version: "1", epoch: 0}\npipeline:\n  - uses: python/import\n    with: {import: no_such_module_here}\n`);
      try {
        expect(failing.exitCode).toBe(1);
        expect(failing.log).toContain('python/import: import no_such_module_here: FAIL');
      } finally {
        await failing.workspace.remove();
      }
    });
  });

  describe('ruby', () => {
    const RECIPE = `package: {name: ruby-hello, version: "1.0.0", epoch: 0}
pipeline:
  - uses: ruby/build
    with:
      gem: hello
  - uses: ruby/install
    with:
      gem: hello
      version: \${{package.version}}
  - uses: ruby/clean
`;
    it('generates gem build, gem install and clean commands', async () => {
      const steps = compile(await project(), RECIPE).packages[0]!.steps.map((s) => s.script);
      expect(steps[0]).toContain("gem build 'hello.gemspec'");
      expect(steps[1]).toContain("file='hello-1.0.0.gem'");
      expect(steps[1]).toContain("--version '1.0.0'");
      expect(steps[2]).toContain('rm -rf "$gemdir/build_info" "$gemdir/cache" "$gemdir/extensions" "$gemdir/plugins"');
    });
    it.skipIf(!HAVE.gem)('builds and installs a gem for real (needs ruby)', async () => {
      const p = await project({
        'hello.gemspec': `Gem::Specification.new do |s|\n  s.name = 'hello'\n  s.version = '1.0.0'\n  s.summary = 'hello'\n  s.authors = ['t']\n  s.files = ['lib/hello.rb']\n  s.license = 'MIT'\nend\n`,
        'lib/hello.rb': "module Hello\n  GREETING = 'ruby-built'\nend\n",
      });
      const result = await succeed(p, RECIPE);
      const all = await files(result.out('ruby-hello'));
      expect(all.some((f) => f.endsWith('gems/hello-1.0.0/lib/hello.rb'))).toBe(true);
      expect(all.some((f) => f.includes('/cache/'))).toBe(false);
    });
  });

  describe('perl', () => {
    const RECIPE = `package: {name: perl-hello, version: "1.0", epoch: 0}
pipeline:
  - uses: perl/make
  - uses: autoconf/make
  - uses: autoconf/make-install
  - uses: perl/cleanup
`;
    it('generates Makefile.PL and cleanup commands', async () => {
      const steps = compile(await project(), RECIPE).packages[0]!.steps.map((s) => s.script);
      expect(steps[0]).toContain('PERL_MM_USE_DEFAULT=1 perl -I. Makefile.PL INSTALLDIRS=vendor');
      expect(steps.at(-1)).toContain("find '/home/build/melange-out/perl-hello' \\( -name perllocal.pod -o -name .packlist \\) -type f -print -delete");
    });
    it.skipIf(!HAVE.perl)('builds and installs a Perl module for real (needs perl with ExtUtils::MakeMaker)', async () => {
      const p = await project({
        'Makefile.PL': "use ExtUtils::MakeMaker;\nWriteMakefile(NAME => 'Hello', VERSION => '1.0');\n",
        'lib/Hello.pm': "package Hello;\nour $GREETING = 'perl-built';\n1;\n",
      });
      const result = await succeed(p, RECIPE);
      const all = await files(result.out('perl-hello'));
      expect(all.filter((f) => f.endsWith('/Hello.pm'))).toHaveLength(1);
      expect(all.some((f) => f.endsWith('.packlist') || f.endsWith('perllocal.pod'))).toBe(false);
    });
  });
});
