// `builder update-cache` and `builder source get` through the real CLI: a local HTTP server and a real
// local git repository.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builder, hasStackTrace } from '../helpers/cli.ts';
import { git, gitRepoWith as repoWith } from '../helpers/git.ts';
import { useHttpServer } from '../helpers/http.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
let hits = 0;
const BODY = Buffer.from('tarball bytes\n');
const http = useHttpServer((_req, res) => {
  hits++;
  res.writeHead(200).end(BODY);
});

describe('builder update-cache', () => {
  it('fetches the sources into the cache once, by checksum', async () => {
    const dir = await tempDir();
    const sha = createHash('sha256').update(BODY).digest('hex');
    const recipe = await writeRecipe(dir, `package:\n  name: foo\n  version: 1.0\npipeline:\n  - uses: fetch\n    with:\n      uri: ${http.url()}/foo-\${{package.version}}.tar.gz\n      expected-sha256: ${sha}\n      extract: false\n`);
    const cache = join(dir, 'cache');
    const before = hits;
    const r = await builder(['update-cache', '--cache-dir', cache, recipe]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toContain(`fetched ${http.url()}/foo-1.0.tar.gz`);
    expect(await readFile(join(cache, `sha256:${sha}`))).toEqual(BODY);
    const again = await builder(['update-cache', '--cache-dir', cache, recipe]);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stdout).toContain('cached ');
    expect(hits - before).toBe(1);
  });

  it('a wrong checksum fails and leaves nothing under the name', async () => {
    const dir = await tempDir();
    const recipe = await writeRecipe(dir, `package:\n  name: foo\n  version: 1.0\npipeline:\n  - uses: fetch\n    with:\n      uri: ${http.url()}/x.tar.gz\n      expected-sha256: ${'0'.repeat(64)}\n`);
    const cache = join(dir, 'cache');
    const r = await builder(['update-cache', '--cache-dir', cache, recipe]);
    expect(r.exitCode).toBe(1);
    expect(hasStackTrace(r.all)).toBe(false);
    expect((await readdir(cache)).filter((f) => f.startsWith('sha256:'))).toEqual([]);
  });
});

describe('builder source get', () => {
  it('checks out the git source into <output>/<name> with the patches applied', async () => {
    const dir = await tempDir();
    const { repo: upstream, commit } = await repoWith(dir, { 'hello.txt': 'hello\n' });
    await git(upstream, 'tag', 'v1.0');
    await mkdir(join(dir, 'foo'));
    await writeFile(join(dir, 'foo', 'fix.patch'), '--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-hello\n+hello, patched\n');
    const recipe = await writeRecipe(dir, `package:\n  name: foo\n  version: "1.0"\npipeline:\n  - uses: git-checkout\n    with:\n      repository: ${upstream}\n      tag: v\${{package.version}}\n      expected-commit: ${commit}\n  - uses: patch\n    with:\n      patches: fix.patch\n`);
    const out = join(dir, 'src');
    const r = await builder(['source', 'get', recipe, '-o', out, '--cache-dir', join(dir, 'cache')]);
    expect(r.exitCode, r.all).toBe(0);
    expect(await readFile(join(out, 'foo', 'hello.txt'), 'utf8')).toBe('hello, patched\n');
    // The patch is a commit on top of the checked-out one.
    expect((await git(join(out, 'foo'), 'rev-parse', 'HEAD~1')).stdout.trim()).toBe(commit);
    expect((await git(join(out, 'foo'), 'log', '-1', '--format=%s')).stdout.trim()).toBe('fix.patch');

    // melange's spelling, with -o on `source`: the same directory, which exists now.
    const twice = await builder(['source', '-o', out, 'get', recipe, '--cache-dir', join(dir, 'cache')]);
    expect(twice.exitCode).toBe(1);
    expect(twice.stderr).toContain('already exists');
  });

  it('a patch that does not apply fails and leaves no directory', async () => {
    const dir = await tempDir();
    const { repo: upstream } = await repoWith(dir, { 'a.txt': 'a\n' });
    await mkdir(join(dir, 'foo'));
    await writeFile(join(dir, 'foo', 'bad.patch'), '--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-zzz\n+b\n');
    const recipe = await writeRecipe(dir, `package:\n  name: foo\n  version: "1.0"\npipeline:\n  - uses: git-checkout\n    with:\n      repository: ${upstream}\n      branch: main\n  - uses: patch\n    with:\n      patches: bad.patch\n`);
    const out = join(dir, 'src');
    const r = await builder(['source', 'get', recipe, '-o', out, '--cache-dir', join(dir, 'cache')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('bad.patch does not apply');
    expect(await readdir(out)).toEqual([]);
  });
});

describe('builder source pop', () => {
  it('turns the patched checkout plus new commits into git-am patches and rewrites the recipe step', async () => {
    const dir = await tempDir();
    const { repo: upstream, commit } = await repoWith(dir, { 'hello.txt': 'hello\n' });
    await mkdir(join(dir, 'foo'));
    await writeFile(join(dir, 'foo', 'fix.patch'), '--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-hello\n+hello, patched\n');
    const text = `package:\n  name: foo\n  version: "1.0"\npipeline:\n  - uses: git-checkout # the source\n    with:\n      repository: ${upstream}\n      branch: main\n      expected-commit: ${commit}\n  - uses: patch\n    with:\n      patches: fix.patch\n  - runs: make\n`;
    const recipe = await writeRecipe(dir, text);
    const out = join(dir, 'src');
    expect((await builder(['source', 'get', recipe, '-o', out, '--cache-dir', join(dir, 'cache')])).exitCode).toBe(0);
    const work = join(out, 'foo');
    await writeFile(join(work, 'new.txt'), 'new\n');
    await git(work, 'add', 'new.txt');
    await git(work, 'commit', '-q', '-m', 'Add new.txt');

    const r = await builder(['source', 'pop', recipe, '-o', out]);
    expect(r.exitCode, r.all).toBe(0);
    const files = (await readdir(join(dir, 'foo'))).sort();
    expect(files).toEqual(['0001-fix.patch.patch', '0002-Add-new.txt.patch', 'fix.patch']);
    expect(await readFile(recipe, 'utf8')).toBe(text.replace('uses: patch', 'uses: git-am').replace('patches: fix.patch', 'patches: 0001-fix.patch.patch 0002-Add-new.txt.patch'));

    // The popped recipe gets the same tree back.
    const again = join(dir, 'again');
    const g = await builder(['source', 'get', recipe, '-o', again, '--cache-dir', join(dir, 'cache')]);
    expect(g.exitCode, g.all).toBe(0);
    expect(await readFile(join(again, 'foo', 'hello.txt'), 'utf8')).toBe('hello, patched\n');
    expect(await readFile(join(again, 'foo', 'new.txt'), 'utf8')).toBe('new\n');
  });

  it('adds a git-am step after the checkout when there is none, and says so when there is nothing to pop', async () => {
    const dir = await tempDir();
    const { repo: upstream, commit } = await repoWith(dir, { 'a.txt': 'a\n' });
    const text = `package:\n  name: foo\n  version: "1.0"\npipeline:\n  - uses: git-checkout\n    with:\n      repository: ${upstream}\n      expected-commit: ${commit}\n  - runs: make\n`;
    const recipe = await writeRecipe(dir, text);
    const out = join(dir, 'src');
    expect((await builder(['source', 'get', recipe, '-o', out, '--cache-dir', join(dir, 'cache')])).exitCode).toBe(0);
    const none = await builder(['source', 'pop', recipe, '-o', out]);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain('nothing to pop');
    await writeFile(join(out, 'foo', 'a.txt'), 'b\n');
    await git(join(out, 'foo'), 'commit', '-q', '-am', 'b');
    const r = await builder(['source', 'pop', recipe, '-o', out]);
    expect(r.exitCode, r.all).toBe(0);
    expect(await readFile(recipe, 'utf8')).toBe(text.replace('  - runs: make\n', '  - uses: git-am\n    with:\n      patches: 0001-b.patch\n  - runs: make\n'));
  });
});
