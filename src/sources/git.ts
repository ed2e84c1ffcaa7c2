// Host-side `git-checkout`: clone into the cache dir, check out the requested revision, verify the expected
// commit and apply cherry-picks. The sandbox step only copies the finished checkout into the workspace.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
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

/** A git command that failed; `stderr` holds its last lines. */
export class GitCommandError extends BuilderError {
  override name = 'GitCommandError';
  readonly stderr: string[];
  constructor(message: string, stderr: string[]) {
    super(message, { details: stderr });
    this.stderr = stderr;
  }
}

const GIT_ENV = {
  GIT_TERMINAL_PROMPT: '0',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_AUTHOR_NAME: 'builder',
  GIT_AUTHOR_EMAIL: 'builder@localhost',
  GIT_COMMITTER_NAME: 'builder',
  GIT_COMMITTER_EMAIL: 'builder@localhost',
};

/** Failures a retry cannot fix: the server answered, and the ref is not there. */
const PERMANENT = /not found in upstream|couldn't find remote ref|could not find remote branch/i;

type Git = (args: string[], cwd: string, extra?: { env?: Record<string, string>; input?: string }) => Promise<string>;

/** Clone and check out `source` into `<cacheDir>/<cacheName>`, reusing a pinned checkout already there. */
export async function checkoutToCache(source: GitSourcePlan, options: GitCheckoutOptions): Promise<GitCheckoutResult> {
  const target = join(options.cacheDir, source.cacheName);
  const where = `${source.source}: git-checkout ${source.repository}`;
  const git = gitRunner(where, options.signal);
  const repository = repositoryArgument(source.repository, options.baseDir);
  // Whether a failure may pass depends on where git really goes: `url.*.insteadOf` can turn a remote URL
  // into a local mirror, whose failures are permanent.
  await mkdir(dirname(target), { recursive: true });
  const url = await git(['ls-remote', '--get-url', '--', repository], dirname(target)).catch(() => repository);
  const retrying = retrier(source, url, options);

  // A checkout pinned to a commit never changes; one that follows a branch or tag is cloned afresh.
  if (source.expectedCommit && (await isDirectory(join(target, '.git')))) {
    const head = await git(['rev-parse', 'HEAD'], target).catch(() => '');
    // Entries are renamed into place only when complete; after cherry-picks HEAD is their result.
    const pinned =
      head === source.expectedCommit ||
      (head !== '' && source.cherryPicks.length > 0) ||
      (head !== '' && source.tag !== undefined && (await tagObject(git, target, source.tag)) === source.expectedCommit);
    if (pinned) {
      if (source.expectedCommitIsBranchTip) await checkBranchTip(source, repository, git, retrying, where, options);
      options.log?.(`git-checkout: ${source.repository}: using ${head.slice(0, 12)} from the cache`);
      return { path: target, commit: head, cached: true };
    }
  }

  if (!source.expectedCommit) {
    const ref = source.tag ? `tag ${source.tag}` : source.branch ? `branch ${source.branch}` : 'the default branch';
    options.log?.(
      `git-checkout: warning: no expected-commit: ${source.repository} ${ref} is not pinned${source.reason ? ` (reason: ${source.reason})` : ''}`,
    );
  }

  const temp = join(dirname(target), `.tmp-${randomBytes(6).toString('hex')}`);
  try {
    const ref = source.tag ?? source.branch;
    options.log?.(`git-checkout: cloning ${source.repository}${ref ? ` (${ref})` : ''}`);
    const depth = source.depth !== undefined ? [`--depth=${source.depth}`] : [];
    await retrying('clone', async () => {
      await rm(temp, { recursive: true, force: true });
      await git(
        [
          '-c', 'advice.detachedHead=false',
          'clone', '--quiet', '--origin', 'origin',
          ...(ref ? ['--branch', ref] : []),
          ...depth,
          ...(source.recurseSubmodules
            ? ['--recurse-submodules', `--jobs=${source.submoduleJobs}`, ...(source.shallowSubmodules ? ['--shallow-submodules'] : [])]
            : []),
          // Only the top-level files are checked out until the cone is set.
          ...(source.sparsePaths.length > 0 ? ['--sparse'] : []),
          '--', repository, temp,
        ],
        dirname(target),
      );
    });
    if (source.sparsePaths.length > 0) {
      options.log?.(`git-checkout: sparse checkout of ${source.sparsePaths.join(', ')}`);
      // Paths go through stdin so that none can be read as an option.
      await git(['sparse-checkout', 'set', '--cone', '--stdin'], temp, { input: `${source.sparsePaths.join('\n')}\n` });
    }
    let head: string;
    if (source.tag) head = await checkOutTag(source, source.tag, temp, git, retrying, where, options);
    else head = await checkOutBranch(source, temp, git, where, options);
    if (source.cherryPicks.length > 0) head = await cherryPick(source, temp, git, retrying, options);
    await rm(target, { recursive: true, force: true });
    await rename(temp, target);
    options.log?.(`git-checkout: ${source.repository} at ${head}`);
    return { path: target, commit: head, cached: false };
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * `git clone --branch X` takes the branch when a branch and a tag are both named X, so the tag is fetched by
 * its full ref and checked out explicitly. An expected-commit may name the annotated tag object instead of
 * its commit (melange accepts that, with a warning).
 */
async function checkOutTag(
  source: GitSourcePlan,
  tag: string,
  dir: string,
  git: Git,
  retrying: Retrier,
  where: string,
  options: GitCheckoutOptions,
): Promise<string> {
  const depth = source.depth !== undefined ? [`--depth=${source.depth}`] : [];
  await retrying('fetch', () => git(['fetch', '--quiet', ...depth, '--no-tags', 'origin', `+refs/tags/${tag}:refs/tags/${tag}`], dir));
  await git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', `refs/tags/${tag}^{commit}`], dir);
  if (source.recurseSubmodules) await updateSubmodules(source, dir, git);
  const head = await git(['rev-parse', 'HEAD'], dir);
  if (source.expectedCommit && head !== source.expectedCommit) {
    const object = await tagObject(git, dir, tag);
    if (object !== source.expectedCommit) {
      throw new BuilderError(`${where}: tag ${tag} is at commit ${head}, but expected-commit is ${source.expectedCommit}`);
    }
    options.log?.(
      `git-checkout: warning: expected-commit ${source.expectedCommit} is the annotated tag object of ${tag}; its commit is ${head} (set expected-commit to that)`,
    );
  }
  return head;
}

async function checkOutBranch(source: GitSourcePlan, dir: string, git: Git, where: string, options: GitCheckoutOptions): Promise<string> {
  const head = await git(['rev-parse', 'HEAD'], dir);
  const expected = source.expectedCommit;
  if (!expected || head === expected) return head;
  const branch = source.branch ? `branch ${source.branch}` : 'the default branch';
  if (source.expectedCommitIsBranchTip) throw branchTipError(where, source, head);
  // A branch may have moved on since the recipe was written: the pinned commit is used when it is on it.
  const onBranch = await git(['merge-base', '--is-ancestor', expected, head], dir).then(
    () => true,
    () => false,
  );
  if (!onBranch) {
    const shallow = source.depth !== undefined ? ` within the last ${source.depth} commit${source.depth === 1 ? '' : 's'} (depth: -1 clones the whole history)` : '';
    throw new BuilderError(`${where}: expected-commit ${expected} is not on ${branch}${shallow} (at ${head})`);
  }
  options.log?.(`git-checkout: ${branch} is at ${head}; checking out the expected commit ${expected}`);
  await git(['reset', '--quiet', '--hard', expected], dir);
  if (source.recurseSubmodules) await updateSubmodules(source, dir, git);
  return expected;
}

async function updateSubmodules(source: GitSourcePlan, dir: string, git: Git): Promise<void> {
  await git(['submodule', 'update', '--quiet', '--init', '--recursive', `--jobs=${source.submoduleJobs}`], dir);
}

/** A cached checkout is reused for a branch-tip pin only while the branch is still at the expected commit. */
async function checkBranchTip(
  source: GitSourcePlan,
  repository: string,
  git: Git,
  retrying: Retrier,
  where: string,
  options: GitCheckoutOptions,
): Promise<void> {
  const ref = `refs/heads/${source.branch}`;
  const out = await retrying('ls-remote', () => git(['ls-remote', '--', repository, ref], options.cacheDir));
  const tip = out.split('\n').find((l) => l.endsWith(`\t${ref}`))?.split('\t')[0];
  if (tip === undefined) throw new BuilderError(`${where}: branch ${source.branch} does not exist`);
  if (tip !== source.expectedCommit) throw branchTipError(where, source, tip);
}

function branchTipError(where: string, source: GitSourcePlan, tip: string): BuilderError {
  return new BuilderError(
    `${where}: expected-commit ${source.expectedCommit} is not the tip of branch ${source.branch} (${tip}), as expected-commit-is-branch-tip requires: the branch moved on, or the version was bumped without updating expected-commit`,
  );
}

/** What refs/tags/<tag> names: the annotated tag object, or the commit of a lightweight tag. */
async function tagObject(git: Git, dir: string, tag: string): Promise<string> {
  return git(['rev-parse', '--verify', '--quiet', `refs/tags/${tag}`], dir).catch(() => '');
}

async function cherryPick(source: GitSourcePlan, dir: string, git: Git, retrying: Retrier, options: GitCheckoutOptions): Promise<string> {
  if ((await git(['rev-parse', '--is-shallow-repository'], dir)) === 'true') {
    await retrying('fetch', () => git(['fetch', '--quiet', '--unshallow', 'origin'], dir));
  }
  // Committing at the checkout's own date keeps the result independent of when the build ran.
  const date = await git(['log', '-1', '--format=%ct'], dir);
  const fetched = new Set<string>();
  for (const entry of source.cherryPicks) {
    const slash = entry.lastIndexOf('/');
    const branch = slash < 0 ? '' : entry.slice(0, slash);
    const commit = entry.slice(slash + 1);
    if (branch && !fetched.has(branch)) {
      await retrying('fetch', () => git(['fetch', '--quiet', 'origin', `+refs/heads/${branch}:refs/remotes/origin/${branch}`], dir));
      fetched.add(branch);
    }
    options.log?.(`git-checkout: cherry-picking ${commit}${branch ? ` from ${branch}` : ''}`);
    await git(['cherry-pick', '-x', commit], dir, { env: { GIT_COMMITTER_DATE: `@${date} +0000` } });
  }
  return git(['rev-parse', 'HEAD'], dir);
}

type Retrier = <T>(what: string, op: () => Promise<T>) => Promise<T>;

/**
 * Runs network operations on a remote repository with `max-retries` retries, waiting `initial-backoff`
 * seconds (doubling, at most `max-backoff`, plus up to as much again at random so that many builds do not
 * retry in step). Local repositories are not retried: their failures do not go away. `url` is the URL git
 * uses, after `url.*.insteadOf`.
 */
function retrier(source: GitSourcePlan, url: string, options: GitCheckoutOptions): Retrier {
  const remote = isRemote(url);
  const { maxRetries, initialBackoff, maxBackoff } = source.retry;
  return async <T>(what: string, op: () => Promise<T>): Promise<T> => {
    let backoff = initialBackoff;
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (err) {
        const transient = err instanceof GitCommandError && !err.stderr.some((l) => PERMANENT.test(l));
        if (!remote || !transient || attempt >= maxRetries || options.signal?.aborted) throw err;
        const wait = Math.min(maxBackoff, backoff + Math.floor(Math.random() * (backoff + 1)));
        options.log?.(`git-checkout: ${what} failed (${err.stderr.at(-1) ?? err.message}); retry ${attempt + 1} of ${maxRetries} in ${wait} s`);
        try {
          await sleep(wait * 1000, undefined, { signal: options.signal });
        } catch (cause) {
          throw new BuilderError(`${source.source}: git-checkout ${source.repository}: interrupted`, { cause });
        }
        backoff = Math.min(maxBackoff, backoff * 2);
      }
    }
  };
}

function gitRunner(where: string, signal: AbortSignal | undefined): Git {
  return async (args, cwd, extra = {}) => {
    const result = await execa('git', args, {
      cwd,
      env: { ...GIT_ENV, ...extra.env },
      reject: false,
      ...(extra.input !== undefined ? { input: extra.input } : { stdin: 'ignore' as const }),
      cancelSignal: signal,
    });
    if (result.failed && result.exitCode === undefined && (result as { code?: string }).code === 'ENOENT') {
      throw new MissingToolError(`${where}: git is not installed (apt-get install git)`);
    }
    if (result.isCanceled) throw new BuilderError(`${where}: interrupted`);
    if (result.exitCode !== 0) {
      const lines = String(result.stderr).trim().split('\n').filter((l) => l !== '');
      const command = args.find((a, i) => !a.startsWith('-') && !a.includes('=') && args[i - 1] !== '-c') ?? '';
      throw new GitCommandError(`${where}: git ${command} failed: ${lines.at(-1) ?? `exit code ${result.exitCode}`}`, lines.slice(-10));
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

/** Whether the repository is reached over a network (so a failure may be passing). */
function isRemote(repository: string): boolean {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(repository)?.[1]?.toLowerCase();
  if (scheme !== undefined) return scheme !== 'file';
  return /^[^/:]+@[^/:]+:/.test(repository);
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}
