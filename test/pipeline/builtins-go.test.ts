// The Go pipelines melange ships besides go/build and go/install (builtins.test.ts): go/build/v2 and go/deps
// run for real with Debian's golang-go against a module proxy the test writes to disk (GOPROXY=file://, so
// nothing leaves the machine). Checked by their generated commands only:
// - go/bump: gobump is a Chainguard tool Debian does not package.
// - go/covdata: `go tool covdata` (and `go build -cover`) came with Go 1.20; Debian 12 has Go 1.19.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/tmp.ts';
import { compile, files, makeProject, succeed, writeFiles } from './builtin-project.ts';
import { hasTool } from './sandbox.ts';

const tempDir = useTempDirs();
const HAVE_GO = await hasTool('go');

const GREET_MODULE = 'example.com/greet';

/**
 * A file-system module proxy (the layout `go help goproxy` describes) under <src>/proxy serving
 * example.com/greet v1.0.0 and v1.1.0, whose Greeting() names its version.
 */
async function writeProxy(src: string, staging: string): Promise<void> {
  const versions = ['v1.0.0', 'v1.1.0'];
  const dir = join(src, 'proxy', GREET_MODULE, '@v');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'list'), `${versions.join('\n')}\n`);
  for (const v of versions) {
    const mod = `module ${GREET_MODULE}\n\ngo 1.19\n`;
    await writeFile(join(dir, `${v}.mod`), mod);
    await writeFile(join(dir, `${v}.info`), JSON.stringify({ Version: v, Time: '2024-01-01T00:00:00Z' }));
    const root = join(staging, v, `${GREET_MODULE}@${v}`);
    await writeFiles(root, { 'go.mod': mod, 'greet.go': `package greet\n\nfunc Greeting() string { return "greet ${v}" }\n` });
    await execa('zip', ['-q', '-r', '-X', join(dir, `${v}.zip`), `${GREET_MODULE}@${v}`], { cwd: join(staging, v) });
  }
}

const ENV = `environment:
  environment:
    GOPROXY: file:///home/build/proxy
    GOSUMDB: "off"
    GOFLAGS: -modcacherw
    CGO_ENABLED: "0"
`;

const MAIN_GO = `package main

import (
\t"fmt"

\t"${GREET_MODULE}"
)

var suffix = ""

func main() { fmt.Println(greet.Greeting() + suffix) }
`;

async function goProject() {
  const dir = await tempDir();
  const p = await makeProject(dir, {
    'go.mod': `module example.com/hello\n\ngo 1.19\n\nrequire ${GREET_MODULE} v1.0.0\n`,
    'main.go': MAIN_GO,
  });
  await writeProxy(p.src, join(dir, 'staging'));
  return p;
}

describe('go/build/v2 and go/deps', () => {
  const RECIPE = `package: {name: hello, version: "1.0", epoch: 0}
${ENV}pipeline:
  - uses: go/deps
    with:
      deps: ${GREET_MODULE}@v1.1.0
      vendor: "true"
  - uses: go/build/v2
    with:
      output: hello
      vendor: "true"
      ldflags: -X main.suffix=-v2
`;

  it('generates go build with the toolchain tags, strip flags, -trimpath and -buildmode, then strip', async () => {
    const plan = compile(await goProject(), RECIPE);
    const steps = plan.packages[0]!.steps;
    expect(steps.map((s) => s.uses)).toEqual(['go/deps', 'go/build/v2', 'go/build/v2 > strip']);
    expect(steps[1]!.script).toContain("-o '/home/build/melange-out/hello/usr/bin/hello'");
    expect(steps[1]!.script).toContain("-tags 'netgo,osusergo,'");
    expect(steps[1]!.script).toContain("-ldflags '-w -X main.suffix=-v2'");
    expect(steps[1]!.script).toContain("-buildmode 'default'");
    expect(steps[1]!.script).toContain('export GOMODCACHE=/var/cache/melange/gomodcache');
    expect(plan.environment.packages).toEqual(expect.arrayContaining(['go', 'busybox', 'ca-certificates-bundle', 'binutils', 'scanelf']));
  });

  it.skipIf(!HAVE_GO)('bumps a dependency, vendors it and builds against the vendor tree for real (needs go)', async () => {
    const p = await goProject();
    const result = await succeed(p, RECIPE);
    expect((await execa(join(result.out('hello'), 'usr/bin/hello'))).stdout).toBe('greet v1.1.0-v2');
    expect(await readFile(join(result.workspace.dir, 'go.mod'), 'utf8')).toContain(`${GREET_MODULE} v1.1.0`);
    expect(await readFile(join(result.workspace.dir, 'vendor', 'modules.txt'), 'utf8')).toContain(`# ${GREET_MODULE} v1.1.0`);
  });

  it.skipIf(!HAVE_GO)('downloads into the build cache, names the binary after the package, keeps a patched vendor tree (needs go)', async () => {
    const p = await goProject();
    const result = await succeed(p, `package: {name: hello, version: "1.0", epoch: 0}
${ENV}pipeline:
  - runs: go mod tidy
  - uses: go/build/v2
subpackages:
  - name: hello-patched
    pipeline:
      # Recipes patch vendored sources; go/build/v2 must build what is there, not vendor again.
      - runs: |
          go mod vendor
          sed -i 's/"greet v/"patched v/' vendor/${GREET_MODULE}/greet.go
      - uses: go/build/v2
        with:
          vendor: "true"
          output: hello-patched
          ignore-untracked-files: "false"
`);
    expect(await files(result.out('hello'))).toEqual(['usr/bin/hello']);
    expect((await execa(join(result.out('hello'), 'usr/bin/hello'))).stdout).toBe('greet v1.0.0');
    // Downloaded modules went to the build cache (GOMODCACHE under /var/cache/melange), as melange's do.
    expect(await files(join(p.cache, 'gomodcache', 'cache', 'download', GREET_MODULE, '@v'))).toContain('v1.0.0.zip');
    expect((await execa(join(result.out('hello-patched'), 'usr/bin/hello-patched'))).stdout).toBe('patched v1.0.0');
  });
});

describe('go/bump and go/covdata (generated commands only: see the top of the file)', () => {
  it('go/bump runs gobump in modroot with every flag', async () => {
    const plan = compile(await makeProject(await tempDir()), `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: go/bump
    with:
      deps: golang.org/x/net@v0.38.0 golang.org/x/crypto@v0.35.0
      modroot: cmd
      replaces: example.com/a=example.com/b@v1.0.0
`);
    expect(plan.environment.packages).toEqual(['git', 'gobump']);
    const script = plan.packages[0]!.steps[0]!.script;
    expect(script).toContain("cd 'cmd'\n");
    expect(script).toContain(
      "gobump --packages 'golang.org/x/net@v0.38.0 golang.org/x/crypto@v0.35.0' --replaces 'example.com/a=example.com/b@v1.0.0' \\\n" +
        "  --tidy='true' --show-diff='false' \\\n  --go-version='' --compat='' --work='false'",
    );
  });

  it('go/covdata reads the coverage of cover-dir and adds the go package it names', async () => {
    const plan = compile(await makeProject(await tempDir()), `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: go/covdata
    with:
      package: go-1.24
      cover-dir: /tmp/cover
`);
    expect(plan.environment.packages).toEqual(['go-1.24', 'busybox']);
    expect(plan.packages[0]!.steps[0]!.script).toContain("go tool covdata func -i '/tmp/cover' | tail -1");
  });
});
