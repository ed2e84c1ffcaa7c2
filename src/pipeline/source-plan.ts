// A pipeline definition's `source:` (builder's extension for fetch and git-checkout) → the host-side action
// the build runs before the sandbox starts: what to download or clone, how to verify it, its cache name.
import { createHash } from 'node:crypto';
import type { Problems, Sourced } from '../config/decode.ts';
import type { PipelineStep, SourceConfig } from '../config/schema.ts';
import { formatLocation } from '../errors.ts';
import type { PipelineDefinition } from './library.ts';
import type { SourcePlan } from './plan.ts';
import { type Scope, substitute } from './substitute.ts';

const HEX = /^[0-9a-fA-F]+$/;

/** The input a definition's source key passes on unchanged (`${{inputs.<name>}}`), if it is just that. */
function inputOf(key: Sourced): string | undefined {
  return /^\$\{\{\s*inputs\.([A-Za-z0-9_.-]+)\s*\}\}$/.exec(key.value.trim())?.[1];
}

/** The host-side action a definition's `source` asks for; undefined (with problems) when it is unusable. */
export function compileSource(
  src: SourceConfig,
  def: PipelineDefinition,
  step: PipelineStep,
  uses: Sourced,
  stepPath: string,
  path: string,
  scope: Scope,
  inputsFailed: boolean,
  problems: Problems,
): SourcePlan | undefined {
  const origin = formatLocation(uses.loc);
  const value = (s: Sourced | undefined, key: string) => (s ? substitute(s, scope, `${path}: source.${key}`, problems).trim() : '');
  let failed = false;
  /** Reports a problem with one source key: at the `with` entry that set it when there is one. */
  const bad = (message: string, key?: Sourced) => {
    failed = true;
    const input = key ? inputOf(key) : undefined;
    const given = input !== undefined ? step.with?.[input] : undefined;
    // Problems with the inputs were reported where they were written already; don't repeat them.
    if (given) {
      const at = `${stepPath}.with.${input}`;
      if (!problems.list.some((p) => p.path === at)) problems.add(given.loc, at, message);
    } else if (!inputsFailed) problems.add(uses.loc, `${path}`, `pipeline "${def.name}": ${message}`);
    return undefined;
  };
  const hex = (text: string, length: number) => text.length === length && HEX.test(text);
  const flag = (s: Sourced | undefined, key: string, fallback: boolean): boolean => {
    const text = value(s, key);
    if (text === '') return fallback;
    if (text === 'true' || text === 'false') return text === 'true';
    bad(`${key.split('.').pop()} must be true or false, found "${text}"`, s);
    return fallback;
  };
  const number = (s: Sourced | undefined, key: string, fallback: number, kind: 'seconds' | 'count' | 'positive'): number => {
    const text = value(s, key);
    if (text === '') return fallback;
    const name = key.split('.').pop();
    if (kind === 'seconds' ? /^(\d+(\.\d*)?|\.\d+)$/.test(text) : /^\d+$/.test(text)) {
      const n = Number(text);
      if (kind !== 'positive' || n >= 1) return n;
    }
    const want = kind === 'seconds' ? 'a number of seconds' : kind === 'count' ? 'a whole number' : 'a whole number of at least 1';
    bad(`${name} must be ${want}, found "${text}"`, s);
    return fallback;
  };
  if (src.fetch && src.git) return bad('a source is either "fetch" or "git", not both');
  if (src.fetch) {
    const f = src.fetch;
    const uri = value(f.uri, 'fetch.uri');
    const sha256 = value(f['expected-sha256'], 'fetch.expected-sha256').toLowerCase();
    const sha512 = value(f['expected-sha512'], 'fetch.expected-sha512').toLowerCase();
    const none = flag(f['expected-none'], 'fetch.expected-none', false);
    const timeout = number(f.timeout, 'fetch.timeout', 5, 'seconds');
    const dnsTimeout = number(f['dns-timeout'], 'fetch.dns-timeout', 20, 'seconds');
    const attempts = number(f['retry-limit'], 'fetch.retry-limit', 5, 'positive');
    const purl = {
      name: value(f['purl-name'], 'fetch.purl-name') || (scope.get('package.name') ?? ''),
      version: value(f['purl-version'], 'fetch.purl-version') || (scope.get('package.version') ?? ''),
    };
    if (uri === '') return bad('the source has no uri', f.uri);
    if (sha256 !== '' && !hex(sha256, 64)) return bad(`expected-sha256 "${sha256}" is not 64 hexadecimal characters`, f['expected-sha256']);
    if (sha512 !== '' && !hex(sha512, 128)) return bad(`expected-sha512 "${sha512}" is not 128 hexadecimal characters`, f['expected-sha512']);
    if (failed) return undefined;
    if (sha256 === '' && sha512 === '' && !none) {
      return bad('needs expected-sha256 or expected-sha512 (or expected-none: true to skip verification): sources are verified and cached by checksum');
    }
    const common = { timeout, dnsTimeout, attempts, purl, source: origin };
    if (sha256 === '' && sha512 === '') {
      // Nothing names the content before it is downloaded: the cache entry is named for the uri instead.
      const key = createHash('sha256').update(uri).digest('hex');
      return { kind: 'fetch', uri, unverified: true, cacheName: `unverified/${key}`, ...common };
    }
    return {
      kind: 'fetch',
      uri,
      ...(sha256 ? { sha256 } : {}),
      ...(sha512 ? { sha512 } : {}),
      cacheName: sha256 ? `sha256:${sha256}` : `sha512:${sha512}`,
      ...common,
    };
  }
  if (src.git) {
    const g = src.git;
    const repository = value(g.repository, 'git.repository');
    const branch = value(g.branch, 'git.branch');
    const tag = value(g.tag, 'git.tag');
    const expectedCommit = value(g['expected-commit'], 'git.expected-commit').toLowerCase();
    const branchTip = flag(g['expected-commit-is-branch-tip'], 'git.expected-commit-is-branch-tip', false);
    const depthText = value(g.depth, 'git.depth');
    const recurseSubmodules = flag(g['recurse-submodules'], 'git.recurse-submodules', false);
    const shallowSubmodules = flag(g['shallow-submodules'], 'git.shallow-submodules', false);
    const submoduleJobs = number(g['submodule-jobs'], 'git.submodule-jobs', 1, 'positive');
    const retry = {
      maxRetries: number(g['max-retries'], 'git.max-retries', 3, 'count'),
      initialBackoff: number(g['initial-backoff'], 'git.initial-backoff', 2, 'count'),
      maxBackoff: number(g['max-backoff'], 'git.max-backoff', 60, 'count'),
    };
    const sparsePaths = value(g['sparse-paths'], 'git.sparse-paths').split(/\s+/).filter((p) => p !== '');
    const typeHint = value(g['type-hint'], 'git.type-hint');
    const reason = value(g.reason, 'git.reason');
    if (repository === '') return bad('the source has no repository', g.repository);
    if (branch !== '' && tag !== '') return bad(`branch ("${branch}") and tag ("${tag}") are mutually exclusive`);
    if (expectedCommit !== '' && !hex(expectedCommit, 40)) {
      return bad(`expected-commit "${expectedCommit}" is not 40 hexadecimal characters`, g['expected-commit']);
    }
    if (branchTip) {
      const need = tag !== '' ? 'is only valid with branch, not with tag' : branch === '' ? 'needs branch' : expectedCommit === '' ? 'needs expected-commit' : '';
      if (need !== '') return bad(`expected-commit-is-branch-tip ${need}`, g['expected-commit-is-branch-tip']);
    }
    for (const p of sparsePaths) {
      if (p.startsWith('/') || p.split('/').includes('..')) return bad(`sparse-paths: "${p}" must be a path inside the repository`, g['sparse-paths']);
    }
    let depth: number | undefined;
    if (depthText !== '' && depthText !== 'unset' && depthText !== '-1') {
      if (!/^\d+$/.test(depthText) || Number(depthText) < 1) return bad(`depth must be a positive number, -1 or "unset", found "${depthText}"`, g.depth);
      depth = Number(depthText);
    } else if (depthText !== '-1' && (tag !== '' || expectedCommit === '' || branchTip)) {
      // A tag or a branch tip is all there is to check out; only a pinned commit on a branch needs history.
      depth = 1;
    }
    const cherryPicks: string[] = [];
    for (const raw of value(g['cherry-picks'], 'git.cherry-picks').split('\n')) {
      const line = raw.replace(/#.*$/, '').trim();
      if (line === '') continue;
      const colon = line.indexOf(':');
      const ref = colon < 0 ? '' : line.slice(0, colon).trim();
      const comment = colon < 0 ? '' : line.slice(colon + 1).trim();
      if (ref === '' || comment === '' || !hex(ref.split('/').pop() ?? '', 40)) {
        return bad(`cherry-picks: "${line}" is not "[branch/]<40-hex commit>: comment"`, g['cherry-picks']);
      }
      cherryPicks.push(ref);
    }
    if (failed) return undefined;
    // What determines the checkout's content names its cache entry, so two different checkouts of one
    // repository never share a worktree. Options at their defaults are left out of the key, which keeps
    // the names of entries made before those options existed.
    const identity = {
      kind: 'git',
      repository,
      ...(branch ? { branch } : {}),
      ...(tag ? { tag } : {}),
      ...(expectedCommit ? { expectedCommit } : {}),
      ...(depth !== undefined ? { depth } : {}),
      recurseSubmodules,
      cherryPicks,
      ...(shallowSubmodules ? { shallowSubmodules } : {}),
      ...(sparsePaths.length > 0 ? { sparsePaths } : {}),
    };
    const key = createHash('sha256').update(JSON.stringify(identity)).digest('hex');
    return {
      kind: 'git',
      repository,
      ...(branch ? { branch } : {}),
      ...(tag ? { tag } : {}),
      ...(expectedCommit ? { expectedCommit } : {}),
      expectedCommitIsBranchTip: branchTip,
      ...(depth !== undefined ? { depth } : {}),
      recurseSubmodules,
      shallowSubmodules,
      submoduleJobs,
      sparsePaths,
      cherryPicks,
      retry,
      ...(typeHint ? { typeHint } : {}),
      ...(reason ? { reason } : {}),
      cacheName: `git/${key}`,
      source: origin,
    };
  }
  return bad('the source names neither "fetch" nor "git"');
}
