import { createServer } from 'node:http';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it, vi } from 'vitest';
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
  return {
    kind: 'git',
    repository,
    expectedCommitIsBranchTip: false,
    recurseSubmodules: false,
    shallowSubmodules: false,
    submoduleJobs: 1,
    sparsePaths: [],
    cherryPicks: [],
    retry: { maxRetries: 3, initialBackoff: 0, maxBackoff: 0 },
    cacheName: 'git/test',
    source: 'recipe.yaml:4:5',
    ...fields,
  };
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

  it('checks out only sparse-paths (cone mode), with the top-level files', async () => {
    const r = await makeRepo();
    for (const f of ['a/one', 'a/deep/two', 'b/three', 'c/four']) {
      await mkdir(join(r.repo, f, '..'), { recursive: true });
      await writeFile(join(r.repo, f), `${f}\n`);
    }
    await git(r.repo, 'add', '.');
    await git(r.repo, 'commit', '--quiet', '-m', 'tree');
    const head = await git(r.repo, 'rev-parse', 'HEAD');
    const result = await checkoutToCache(plan(pathToFileURL(r.repo).href, { branch: 'main', expectedCommit: head, sparsePaths: ['a', 'c'] }), {
      cacheDir: r.cache,
      baseDir: r.dir,
    });
    expect(result.commit).toBe(head);
    expect((await readdir(result.path)).sort()).toEqual(['.git', 'a', 'c', 'version']);
    expect(await readFile(join(result.path, 'a/deep/two'), 'utf8')).toBe('a/deep/two\n');
    expect(await git(result.path, 'sparse-checkout', 'list')).toBe('a\nc');
  });

  it('with expected-commit-is-branch-tip, accepts only the tip of the branch, also for a cached checkout', async () => {
    const r = await makeRepo();
    const tip = plan(r.repo, { branch: 'main', expectedCommit: r.v2, expectedCommitIsBranchTip: true, depth: 1, cacheName: 'git/tip' });
    const first = await checkoutToCache(tip, { cacheDir: r.cache, baseDir: r.dir });
    expect(first.commit).toBe(r.v2);
    // An older commit of the branch is an error rather than a silent checkout of old code.
    await expect(
      checkoutToCache(plan(r.repo, { branch: 'main', expectedCommit: r.v1, expectedCommitIsBranchTip: true, depth: 1, cacheName: 'git/old' }), {
        cacheDir: r.cache,
        baseDir: r.dir,
      }),
    ).rejects.toThrow(
      `git-checkout ${r.repo}: expected-commit ${r.v1} is not the tip of branch main (${r.v2}), as expected-commit-is-branch-tip requires`,
    );
    expect(await readdir(join(r.cache, 'git'))).toEqual(['tip']);
    // The cached checkout is reused while the branch stays there, and refused once it moves on.
    expect((await checkoutToCache(tip, { cacheDir: r.cache, baseDir: r.dir })).cached).toBe(true);
    await writeFile(join(r.repo, 'version'), '3\n');
    await git(r.repo, 'commit', '--quiet', '-am', 'v3');
    const v3 = await git(r.repo, 'rev-parse', 'HEAD');
    await expect(checkoutToCache(tip, { cacheDir: r.cache, baseDir: r.dir })).rejects.toThrow(`is not the tip of branch main (${v3})`);
  });

  it('takes the tag when a branch has the same name, and accepts the annotated tag object as expected-commit', async () => {
    const r = await makeRepo();
    // A branch named like the tag, pointing elsewhere: `git clone --branch v1` alone would pick it.
    await git(r.repo, 'branch', 'v1', r.v2);
    const tagObject = await git(r.repo, 'rev-parse', 'refs/tags/v1');
    expect(tagObject).not.toBe(r.v1);
    const lines: string[] = [];
    const result = await checkoutToCache(plan(pathToFileURL(r.repo).href, { tag: 'v1', expectedCommit: tagObject, depth: 1 }), {
      cacheDir: r.cache,
      baseDir: r.dir,
      log: (l) => lines.push(l),
    });
    expect(result.commit).toBe(r.v1);
    expect(await readFile(join(result.path, 'version'), 'utf8')).toBe('1\n');
    expect(lines).toContain(
      `git-checkout: warning: expected-commit ${tagObject} is the annotated tag object of v1; its commit is ${r.v1} (set expected-commit to that)`,
    );
    // Reused from the cache like any pinned checkout.
    const again = await checkoutToCache(plan(pathToFileURL(r.repo).href, { tag: 'v1', expectedCommit: tagObject, depth: 1 }), {
      cacheDir: r.cache,
      baseDir: r.dir,
    });
    expect(again.cached).toBe(true);
  });

  it('says when a checkout is not pinned, with the reason given', async () => {
    const r = await makeRepo();
    const lines: string[] = [];
    await checkoutToCache(plan(r.repo, { branch: 'main', depth: 1, reason: 'upstream has no releases' }), {
      cacheDir: r.cache,
      baseDir: r.dir,
      log: (l) => lines.push(l),
    });
    expect(lines).toContain(`git-checkout: warning: no expected-commit: ${r.repo} branch main is not pinned (reason: upstream has no releases)`);
  });

  it('clones submodules, shallow and in parallel when asked', async () => {
    const r = await makeRepo();
    // Submodules over file:// are refused by default since git 2.38; the test repositories are trusted.
    vi.stubEnv('GIT_CONFIG_COUNT', '1');
    vi.stubEnv('GIT_CONFIG_KEY_0', 'protocol.file.allow');
    vi.stubEnv('GIT_CONFIG_VALUE_0', 'always');
    try {
      const sub = join(r.dir, 'sub');
      await execa('git', ['init', '--quiet', '--initial-branch=main', sub], { env: ENV });
      for (const n of ['1', '2']) {
        await writeFile(join(sub, 'lib'), `${n}\n`);
        await git(sub, 'add', '.');
        await git(sub, 'commit', '--quiet', '-m', n);
      }
      await git(r.repo, '-c', 'protocol.file.allow=always', 'submodule', 'add', '--quiet', pathToFileURL(sub).href, 'lib');
      await git(r.repo, 'commit', '--quiet', '-m', 'submodule');
      const result = await checkoutToCache(
        plan(pathToFileURL(r.repo).href, { branch: 'main', depth: 1, recurseSubmodules: true, shallowSubmodules: true, submoduleJobs: 2 }),
        { cacheDir: r.cache, baseDir: r.dir },
      );
      expect(await readFile(join(result.path, 'lib/lib'), 'utf8')).toBe('2\n');
      expect(await git(join(result.path, 'lib'), 'rev-parse', '--is-shallow-repository')).toBe('true');
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('retries network operations on a remote repository, and not on a local one', async () => {
    const r = await makeRepo();
    const bare = join(r.dir, 'served.git');
    await execa('git', ['clone', '--quiet', '--bare', r.repo, bare], { env: ENV });
    await git(bare, 'update-server-info');
    // A "dumb" http server for the bare repository that fails its first `failures` requests.
    let failures = 0;
    let requests = 0;
    const server = createServer((req, res) => {
      requests++;
      if (failures > 0) {
        failures--;
        res.writeHead(500).end('down');
        return;
      }
      const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^\/repo\.git\//, '');
      readFile(join(bare, path)).then(
        (data) => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(data),
        () => res.writeHead(404).end(),
      );
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/repo.git`;
      const retry = { maxRetries: 2, initialBackoff: 0, maxBackoff: 0 };
      const lines: string[] = [];
      failures = 2;
      const result = await checkoutToCache(plan(url, { branch: 'main', expectedCommit: r.v1, retry }), {
        cacheDir: r.cache,
        baseDir: r.dir,
        log: (l) => lines.push(l),
      });
      expect(result.commit).toBe(r.v1);
      expect(lines.filter((l) => l.includes('git-checkout: clone failed'))).toEqual([
        expect.stringMatching(/\(.*500.*\); retry 1 of 2 in 0 s$/),
        expect.stringMatching(/\(.*500.*\); retry 2 of 2 in 0 s$/),
      ]);
      failures = 2;
      await expect(
        checkoutToCache(plan(url, { branch: 'main', expectedCommit: r.v1, retry: { ...retry, maxRetries: 1 }, cacheName: 'git/other' }), {
          cacheDir: r.cache,
          baseDir: r.dir,
        }),
      ).rejects.toThrow(/git clone failed: .*500/);
      // A local repository is not retried: the same request fails the same way.
      const local: string[] = [];
      await expect(
        checkoutToCache(plan(r.repo, { branch: 'gone', retry, cacheName: 'git/local' }), { cacheDir: r.cache, baseDir: r.dir, log: (l) => local.push(l) }),
      ).rejects.toThrow(/git clone failed/);
      expect(local.filter((l) => l.includes('retry'))).toEqual([]);
      expect(requests).toBeGreaterThan(4);
    } finally {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    }
  });

  it('decides on retries from the URL git uses: a remote URL rewritten to a local mirror fails at once', async () => {
    const r = await makeRepo();
    // url.<mirror>.insteadOf, as a user's ~/.gitconfig would say it (git reads GIT_CONFIG_* from the environment).
    vi.stubEnv('GIT_CONFIG_COUNT', '1');
    vi.stubEnv('GIT_CONFIG_KEY_0', `url.${r.dir}/.insteadOf`);
    vi.stubEnv('GIT_CONFIG_VALUE_0', 'https://mirror.example.invalid/');
    try {
      const retry = { maxRetries: 3, initialBackoff: 30, maxBackoff: 30 };
      const good = await checkoutToCache(plan('https://mirror.example.invalid/upstream', { branch: 'main', expectedCommit: r.v1, retry }), {
        cacheDir: r.cache,
        baseDir: r.dir,
      });
      expect(good.commit).toBe(r.v1);
      const lines: string[] = [];
      await expect(
        checkoutToCache(plan('https://mirror.example.invalid/missing', { branch: 'main', retry, cacheName: 'git/missing' }), {
          cacheDir: r.cache,
          baseDir: r.dir,
          log: (l) => lines.push(l),
        }),
      ).rejects.toThrow(/git clone failed/);
      expect(lines.filter((l) => l.includes('retry'))).toEqual([]);
    } finally {
      vi.unstubAllEnvs();
    }
  }, 20_000);
});
