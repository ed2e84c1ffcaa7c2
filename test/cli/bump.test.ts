// `builder bump` and `builder package-version` through the real CLI, with a local HTTP server for the
// fetch checksums.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builder, hasStackTrace } from '../helpers/cli.ts';
import { useHttpServer } from '../helpers/http.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const tarball = (v: string) => Buffer.from(`release ${v}\n`);
const http = useHttpServer((req, res) => {
  const m = /^\/foo-(.+)\.tar\.gz$/.exec(req.url ?? '');
  if (m) res.writeHead(200).end(tarball(m[1]!));
  else res.writeHead(404).end();
});

const RECIPE = (uri: string) => `# The foo package.
package:
  name: foo   # keep this comment
  version: 1.2.3
  epoch: 4
  description: 'single quoted'
  copyright:
    - license: MIT

vars:
  mangled: \${{package.version}}

pipeline:
  - uses: fetch
    with:
      uri: ${uri}/foo-\${{vars.mangled}}.tar.gz
      expected-sha256: 0000000000000000000000000000000000000000000000000000000000000000
      expected-sha512: ${'1'.repeat(128)}
  - uses: git-checkout
    with:
      repository: https://example.com/foo
      tag: v\${{package.version}}
      expected-commit: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
  - uses: git-checkout
    with:
      repository: https://example.com/other
      tag: v9
      expected-commit: cccccccccccccccccccccccccccccccccccccccc
  - runs: |
      echo   "untouched"   # comment
`;

describe('builder bump', () => {
  it('sets the version, resets the epoch, rewrites fetch checksums and expected-commit, and nothing else', async () => {
    const dir = await tempDir();
    const file = await writeRecipe(dir, RECIPE(http.url()));
    const before = await readFile(file, 'utf8');
    const r = await builder(['bump', file, '1.3.0', '--expected-commit', 'b'.repeat(40), '--cache-dir', join(dir, 'cache')]);
    expect(r.exitCode, r.all).toBe(0);
    const after = await readFile(file, 'utf8');
    const sha256 = createHash('sha256').update(tarball('1.3.0')).digest('hex');
    const sha512 = createHash('sha512').update(tarball('1.3.0')).digest('hex');
    const expected = before
      .replace('version: 1.2.3', 'version: "1.3.0"')
      .replace('epoch: 4', 'epoch: 0')
      .replace('0'.repeat(64), sha256)
      .replace('1'.repeat(128), sha512)
      .replace('a'.repeat(40), 'b'.repeat(40));
    expect(after).toBe(expected);
    // The checkout whose tag does not follow the version keeps its commit.
    expect(after).toContain('c'.repeat(40));

    const pv = await builder(['package-version', file]);
    expect(pv.exitCode, pv.all).toBe(0);
    expect(pv.stdout).toBe('foo-1.3.0-r0');
  });

  it('bumping to the same version adds one to the epoch', async () => {
    const dir = await tempDir();
    const file = await writeRecipe(dir, 'package:\n  name: foo\n  version: "2.0"\n  epoch: 1\n');
    expect((await builder(['bump', file, '2.0'])).exitCode).toBe(0);
    expect(await readFile(file, 'utf8')).toBe('package:\n  name: foo\n  version: "2.0"\n  epoch: 2\n');
  });

  it('a recipe without package.version is an error at the package key, and the file is left alone', async () => {
    const dir = await tempDir();
    const text = '# c\npackage:\n  name: foo\n';
    const file = await writeRecipe(dir, text);
    const r = await builder(['bump', file, '1.0']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`${file}:2:1: package.version: bump needs package.version to be set`);
    expect(hasStackTrace(r.all)).toBe(false);
    expect(await readFile(file, 'utf8')).toBe(text);
  });

  it('a download that fails leaves the recipe as it was', async () => {
    const dir = await tempDir();
    const text = RECIPE(`${http.url()}/missing`);
    const file = await writeRecipe(dir, text);
    const r = await builder(['bump', file, '1.3.0', '--cache-dir', join(dir, 'cache')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/404/);
    expect(await readFile(file, 'utf8')).toBe(text);
  });

  it('--help shows the usage', async () => {
    const r = await builder(['bump', '--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('--expected-commit');
  });
});

describe('builder package-version', () => {
  it('prints name-version-rEPOCH, epoch 0 when absent', async () => {
    const dir = await tempDir();
    const file = await writeRecipe(dir, 'package:\n  name: bar\n  version: 0.1.0\n');
    const r = await builder(['package-version', file]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toBe('bar-0.1.0-r0');
  });
});
