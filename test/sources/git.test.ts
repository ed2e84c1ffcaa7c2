import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { GitSourcePlan } from '../../src/pipeline/plan.ts';
import { checkoutToCache } from '../../src/sources/git.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const ENV = {
  GIT_AUTHOR_NAME: 'test',
  GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'test',
  GIT_COMMITTER_EMAIL: 'test@example.com',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
};

async function git(cwd: string, ...args: string[]): Promise<string> {
  return (await execa('git', args, { cwd, env: ENV })).stdout.trim();
}

/** main: v1 (tagged, annotated) → v2; side: a fix on top of v1. */
async function makeRepo() {
  const dir = await tempDir();
  const repo = join(dir, 'upstream');
  await execa('git', ['init', '--quiet', '--initial-branch=main', repo], { env: ENV });
  await writeFile(join(repo, 'version'), '1\n');
  await git(repo, 'add', '.');
  await git(repo, 'commit', '--quiet', '-m', 'v1');
  await git(repo, 'tag', '-a', 'v1', '-m', 'release 1');
  const v1 = await git(repo, 'rev-parse', 'HEAD');
  await git(repo, 'checkout', '--quiet', '-b', 'side');
  await writeFile(join(repo, 'fix'), 'fixed\n');
  await git(repo, 'add', '.');
  await git(repo, 'commit', '--quiet', '-m', 'fix');
  const fix = await git(repo, 'rev-parse', 'HEAD');
  await git(repo, 'checkout', '--quiet', 'main');
  await writeFile(join(repo, 'version'), '2\n');
  await git(repo, 'commit', '--quiet', '-am', 'v2');
  const v2 = await git(repo, 'rev-parse', 'HEAD');
  return { dir, repo, cache: join(dir, 'cache'), v1, v2, fix };
}

function plan(repository: string, fields: Partial<GitSourcePlan>): GitSourcePlan {
  return { kind: 'git', repository, recurseSubmodules: false, cherryPicks: [], cacheName: 'git/test', source: 'recipe.yaml:4:5', ...fields };
}

describe('host-side git checkout', () => {
  it('checks out a tag at its expected commit into the cache, with its .git', async () => {
    const r = await makeRepo();
    const result = await checkoutToCache(plan(pathToFileURL(r.repo).href, { tag: 'v1', expectedCommit: r.v1, depth: 1 }), { cacheDir: r.cache, baseDir: r.dir });
    expect(result).toEqual({ path: join(r.cache, 'git/test'), commit: r.v1, cached: false });
    expect(await readFile(join(result.path, 'version'), 'utf8')).toBe('1\n');
    expect((await stat(join(result.path, '.git'))).isDirectory()).toBe(true);
    // A pinned checkout is reused as it is.
    const again = await checkoutToCache(plan(pathToFileURL(r.repo).href, { tag: 'v1', expectedCommit: r.v1, depth: 1 }), { cacheDir: r.cache, baseDir: r.dir });
    expect(again.cached).toBe(true);
  });

  it('fails when the tag is not at the expected commit, leaving nothing in the cache', async () => {
    const r = await makeRepo();
    await expect(checkoutToCache(plan(r.repo, { tag: 'v1', expectedCommit: r.v2 }), { cacheDir: r.cache, baseDir: r.dir })).rejects.toThrow(
      `recipe.yaml:4:5: git-checkout ${r.repo}: tag v1 is at commit ${r.v1}, but expected-commit is ${r.v2}`,
    );
    expect(await readdir(join(r.cache, 'git'))).toEqual([]);
  });

  it('checks out an expected commit behind a branch tip, and refuses one not on the branch', async () => {
    const r = await makeRepo();
    const result = await checkoutToCache(plan('upstream', { branch: 'main', expectedCommit: r.v1 }), { cacheDir: r.cache, baseDir: r.dir });
    expect(result.commit).toBe(r.v1);
    expect(await readFile(join(result.path, 'version'), 'utf8')).toBe('1\n');
    await expect(
      checkoutToCache(plan('upstream', { branch: 'main', expectedCommit: r.fix, cacheName: 'git/other' }), { cacheDir: r.cache, baseDir: r.dir }),
    ).rejects.toThrow(`expected-commit ${r.fix} is not on branch main (at ${r.v2})`);
  });

  it('applies cherry-picks from another branch', async () => {
    const r = await makeRepo();
    const result = await checkoutToCache(plan(r.repo, { tag: 'v1', depth: 1, cherryPicks: [`side/${r.fix}`] }), { cacheDir: r.cache, baseDir: r.dir });
    expect(await readFile(join(result.path, 'fix'), 'utf8')).toBe('fixed\n');
    expect(await readFile(join(result.path, 'version'), 'utf8')).toBe('1\n');
    expect(await git(result.path, 'log', '-1', '--format=%B')).toContain(`(cherry picked from commit ${r.fix})`);
  });

  it('clones a branch tip afresh each time and reports git failures', async () => {
    const r = await makeRepo();
    const first = await checkoutToCache(plan(r.repo, { branch: 'main', depth: 1 }), { cacheDir: r.cache, baseDir: r.dir });
    expect(first.commit).toBe(r.v2);
    await writeFile(join(r.repo, 'version'), '3\n');
    await git(r.repo, 'commit', '--quiet', '-am', 'v3');
    const second = await checkoutToCache(plan(r.repo, { branch: 'main', depth: 1 }), { cacheDir: r.cache, baseDir: r.dir });
    expect(second.cached).toBe(false);
    expect(await readFile(join(second.path, 'version'), 'utf8')).toBe('3\n');
    await expect(checkoutToCache(plan(r.repo, { branch: 'no-such-branch' }), { cacheDir: r.cache, baseDir: r.dir })).rejects.toThrow(
      /recipe\.yaml:4:5: git-checkout .*: git clone failed: .*no-such-branch/,
    );
  });
});
