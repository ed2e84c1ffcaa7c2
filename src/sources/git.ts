// Host-side `git-checkout`: clone into the cache dir, check out the requested revision, verify the expected
// commit and apply cherry-picks. The sandbox step only copies the finished checkout into the workspace.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { BuilderError, MissingToolError } from '../errors.ts';
import type { GitSourcePlan } from '../pipeline/plan.ts';

export interface GitCheckoutOptions {
  cacheDir: string;
  /** What relative repository paths are resolved against (the recipe's folder). */
  baseDir: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface GitCheckoutResult {
  /** The checkout directory in the cache. */
  path: string;
  /** The commit checked out (after cherry-picks). */
  commit: string;
  cached: boolean;
}

const GIT_ENV = {
  GIT_TERMINAL_PROMPT: '0',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_AUTHOR_NAME: 'builder',
  GIT_AUTHOR_EMAIL: 'builder@localhost',
  GIT_COMMITTER_NAME: 'builder',
  GIT_COMMITTER_EMAIL: 'builder@localhost',
};

/** Clone and check out `source` into `<cacheDir>/<cacheName>`, reusing a pinned checkout already there. */
export async function checkoutToCache(source: GitSourcePlan, options: GitCheckoutOptions): Promise<GitCheckoutResult> {
  const target = join(options.cacheDir, source.cacheName);
  const where = `${source.source}: git-checkout ${source.repository}`;
  const git = gitRunner(where, options.signal);

  // A checkout pinned to a commit never changes; one that follows a branch or tag is cloned afresh.
  if (source.expectedCommit && (await isDirectory(join(target, '.git')))) {
    const head = await git(['rev-parse', 'HEAD'], target).catch(() => '');
    // Entries are renamed into place only when complete; after cherry-picks HEAD is their result.
    if (head !== '' && (head === source.expectedCommit || source.cherryPicks.length > 0)) {
      options.log?.(`git-checkout: ${source.repository}: using ${head.slice(0, 12)} from the cache`);
      return { path: target, commit: head, cached: true };
    }
  }

  await mkdir(dirname(target), { recursive: true });
  const temp = join(dirname(target), `.tmp-${randomBytes(6).toString('hex')}`);
  try {
    const repository = repositoryArgument(source.repository, options.baseDir);
    const ref = source.tag ?? source.branch;
    options.log?.(`git-checkout: cloning ${source.repository}${ref ? ` (${ref})` : ''}`);
    await git(
      [
        '-c', 'advice.detachedHead=false',
        'clone', '--quiet', '--origin', 'origin',
        ...(ref ? ['--branch', ref] : []),
        ...(source.depth !== undefined ? ['--depth', String(source.depth)] : []),
        ...(source.recurseSubmodules ? ['--recurse-submodules'] : []),
        '--', repository, temp,
      ],
      dirname(target),
    );
    let head = await git(['rev-parse', 'HEAD'], temp);
    if (source.expectedCommit && head !== source.expectedCommit) {
      if (source.tag) {
        throw new BuilderError(`${where}: tag ${source.tag} is at commit ${head}, but expected-commit is ${source.expectedCommit}`);
      }
      // A branch may have moved on since the recipe was written: the pinned commit is used when it is on it.
      const onBranch = await git(['merge-base', '--is-ancestor', source.expectedCommit, head], temp).then(
        () => true,
        () => false,
      );
      if (!onBranch) {
        throw new BuilderError(
          `${where}: expected-commit ${source.expectedCommit} is not on ${source.branch ? `branch ${source.branch}` : 'the default branch'} (at ${head})`,
        );
      }
      await git(['reset', '--quiet', '--hard', source.expectedCommit], temp);
      if (source.recurseSubmodules) await git(['submodule', 'update', '--quiet', '--init', '--recursive'], temp);
      head = source.expectedCommit;
    }
    if (source.cherryPicks.length > 0) head = await cherryPick(source, temp, git, options);
    await rm(target, { recursive: true, force: true });
    await rename(temp, target);
    options.log?.(`git-checkout: ${source.repository} at ${head}`);
    return { path: target, commit: head, cached: false };
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}

async function cherryPick(
  source: GitSourcePlan,
  dir: string,
  git: (args: string[], cwd: string, env?: Record<string, string>) => Promise<string>,
  options: GitCheckoutOptions,
): Promise<string> {
  if ((await git(['rev-parse', '--is-shallow-repository'], dir)) === 'true') {
    await git(['fetch', '--quiet', '--unshallow', 'origin'], dir);
  }
  // Committing at the checkout's own date keeps the result independent of when the build ran.
  const date = await git(['log', '-1', '--format=%ct'], dir);
  const fetched = new Set<string>();
  for (const entry of source.cherryPicks) {
    const slash = entry.lastIndexOf('/');
    const branch = slash < 0 ? '' : entry.slice(0, slash);
    const commit = entry.slice(slash + 1);
    if (branch && !fetched.has(branch)) {
      await git(['fetch', '--quiet', 'origin', `+refs/heads/${branch}:refs/remotes/origin/${branch}`], dir);
      fetched.add(branch);
    }
    options.log?.(`git-checkout: cherry-picking ${commit}${branch ? ` from ${branch}` : ''}`);
    await git(['cherry-pick', '-x', commit], dir, { GIT_COMMITTER_DATE: `@${date} +0000` });
  }
  return git(['rev-parse', 'HEAD'], dir);
}

function gitRunner(where: string, signal: AbortSignal | undefined) {
  return async (args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> => {
    const result = await execa('git', args, {
      cwd,
      env: { ...GIT_ENV, ...env },
      reject: false,
      stdin: 'ignore',
      cancelSignal: signal,
    });
    if (result.failed && result.exitCode === undefined && (result as { code?: string }).code === 'ENOENT') {
      throw new MissingToolError(`${where}: git is not installed (apt-get install git)`);
    }
    if (result.isCanceled) throw new BuilderError(`${where}: interrupted`);
    if (result.exitCode !== 0) {
      const lines = String(result.stderr).trim().split('\n').filter((l) => l !== '');
      throw new BuilderError(`${where}: git ${args.find((a) => !a.startsWith('-') && !a.includes('=')) ?? ''} failed: ${lines.at(-1) ?? `exit code ${result.exitCode}`}`, {
        details: lines.slice(-10),
      });
    }
    return String(result.stdout).trim();
  };
}

/** URLs and scp-style addresses pass through; anything else is a local path under the recipe's folder. */
function repositoryArgument(repository: string, baseDir: string): string {
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(repository)) return repository;
  if (/^[^/:]+@[^/:]+:/.test(repository)) return repository;
  return resolve(baseDir, repository);
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}
