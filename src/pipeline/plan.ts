// The compiled build plan: plain, serialisable data. Runners and the packager consume this; nothing past
// the compiler ever sees YAML.

export interface StepPlan {
  /** Display name: the step's `name`, else the `uses` pipeline it came from, else the first line of its script. */
  name: string;
  /** Shell script body (substitutions applied); run as `/bin/sh -c` after `set -e`. */
  script: string;
  /** Absolute directory inside the sandbox. */
  workdir: string;
  /** Variables this step adds over the build environment (step `environment`, inherited by nesting). */
  env: Record<string, string>;
  /** Where the recipe asked for this step, `file:line:col` (the `uses:` line for steps of a pipeline). */
  source: string;
  /** The pipeline definitions this step comes from, outermost first (`go/build`, or `a > b` when nested). */
  uses?: string;
}

/**
 * Download `uri` on the host into the cache as `cacheName`, verifying its checksum (or, with `expected-none`,
 * recording the checksum of what was downloaded).
 */
export interface FetchSourcePlan {
  kind: 'fetch';
  uri: string;
  /** Lowercase hex; at least one of the two is set unless `unverified`. */
  sha256?: string;
  sha512?: string;
  /**
   * `expected-none: true` and no checksum: the download is not verified. It is stored as `sha256:<hex>` of
   * its own content and linked as `cacheName`, and it is downloaded again on every build.
   */
  unverified?: true;
  /**
   * File name under the cache dir: `sha256:<hex>` (or `sha512:<hex>` when only that is known); for an
   * unverified download `unverified/<sha256 of the uri>`.
   */
  cacheName: string;
  /** `timeout`: seconds without progress (connecting or reading) before an http(s) attempt fails; 0 for none. */
  timeout: number;
  /** `dns-timeout`: seconds a host name lookup may take; 0 for no limit. */
  dnsTimeout: number;
  /** `retry-limit`: http(s) attempts in all (as wget's --tries), at least 1. */
  attempts: number;
  /** `purl-name` / `purl-version`: the package URL the SBOM gives this source. */
  purl: { name: string; version: string };
  /** The step that asked for it, `file:line:col`. */
  source: string;
}

/** Clone `repository` on the host into the cache dir `cacheName` and check out the requested revision. */
export interface GitSourcePlan {
  kind: 'git';
  repository: string;
  branch?: string;
  tag?: string;
  /** Full 40-hex commit the checkout must end up at (for a tag, its annotated tag object is accepted too). */
  expectedCommit?: string;
  /**
   * `expected-commit-is-branch-tip`: `branch` must be at `expectedCommit` exactly; an older commit on the
   * branch is an error instead of being checked out.
   */
  expectedCommitIsBranchTip: boolean;
  /** Clone depth; absent for the full history. */
  depth?: number;
  recurseSubmodules: boolean;
  /** `shallow-submodules`: clone submodules with depth 1. */
  shallowSubmodules: boolean;
  /** `submodule-jobs`: submodules fetched in parallel. */
  submoduleJobs: number;
  /** `sparse-paths`: directories checked out (sparse checkout, cone mode); empty for the whole tree. */
  sparsePaths: string[];
  /** `[branch/]commit` entries applied in order with `git cherry-pick -x`. */
  cherryPicks: string[];
  /** Retries of network operations (clone, fetch) on a remote repository, with exponential backoff. */
  retry: { maxRetries: number; initialBackoff: number; maxBackoff: number };
  /** `type-hint`: what kind of forge hosts the repository, for the SBOM (melange knows `gitlab`). */
  typeHint?: string;
  /** `reason`: why a mutable reference (no expected-commit) is used; shown in the log. */
  reason?: string;
  /** Directory under the cache dir: `git/<sha256 of what determines the checkout>`. */
  cacheName: string;
  source: string;
}

export type SourcePlan = FetchSourcePlan | GitSourcePlan;

export interface DependenciesPlan {
  runtime: string[];
  provides: string[];
  replaces: string[];
  providerPriority?: number;
  replacesPriority?: number;
}

export interface TestPlan {
  environment: {
    repositories: string[];
    keyring: string[];
    /** The test environment's packages, the package under test and what the test pipelines need; sorted. */
    packages: string[];
    env: Record<string, string>;
  };
  steps: StepPlan[];
  sources: SourcePlan[];
}

export interface PackagePlan {
  name: string;
  version: string;
  epoch: number;
  description: string;
  url: string;
  commit: string;
  /** Main package name; every subpackage has it as `origin`. */
  origin: string;
  licenses: string[];
  dependencies: DependenciesPlan;
  options: { noProvides: boolean; noDepends: boolean; noCommands: boolean };
  /** `checks`: linters enabled beyond the defaults and linters downgraded to warnings. */
  checks: { enabled: string[]; disabled: string[] };
  /** Scriptlet name (`pre-install`, …, `trigger`) → script. */
  scriptlets: Record<string, string>;
  triggerPaths: string[];
  steps: StepPlan[];
  /** The package's `test` section, compiled (not run by `builder build`). */
  test?: TestPlan;
}

export interface AccountsPlan {
  /** `accounts.run-as` as written (a user name or uid); absent for the default build user. */
  runAs?: string;
  users: { username: string; uid?: number; gid?: number; shell?: string; homedir?: string }[];
  groups: { groupname: string; gid?: number; members: string[] }[];
}

export interface EnvironmentPlan {
  repositories: string[];
  keyring: string[];
  /** `environment.contents.packages`, build options applied, then every `needs.packages` of the steps. */
  packages: string[];
  /** Base environment of every step (recipe `environment.environment` over the defaults). */
  env: Record<string, string>;
  runAs: { uid: number; gid: number };
  /** Declared users and groups, with melange's `build` user (1000) and group added when absent. */
  accounts: AccountsPlan;
  origins?: Record<string, string[]>;
}

export interface BuildPlan {
  recipeFile: string;
  arch: string;
  environment: EnvironmentPlan;
  capabilities: { add: string[]; drop: string[] };
  resources: { cpu?: string; memory?: string; disk?: string };
  /** Fetches and checkouts to run on the host, in order, before the sandbox starts. */
  sources: SourcePlan[];
  /** Main package first, then the subpackages that are built, in recipe order (ranges expanded). */
  packages: PackagePlan[];
  /** Subpackages left out because their `if` is false. */
  skippedPackages: { name: string; reason: string }[];
  /** `package.target-architecture`; empty means every architecture. */
  targetArchitecture: string[];
  /** Enabled `options` (`--build-option`). */
  buildOptions: string[];
  /** `package.timeout` in seconds, when set. */
  timeout?: number;
}

export const WORKSPACE = '/home/build';
export const OUT_DIR = `${WORKSPACE}/melange-out`;
/** Where the host cache dir is mounted in the sandbox. */
export const CACHE_MOUNT = '/var/cache/melange';
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Whether the recipe builds for `plan.arch` (`target-architecture` empty, `all`, or naming it). */
export function isArchTargeted(plan: Pick<BuildPlan, 'arch' | 'targetArchitecture'>): boolean {
  const targets = plan.targetArchitecture;
  if (targets.length === 0 || targets.includes('all')) return true;
  const aliases: Record<string, string> = { amd64: 'x86_64', arm64: 'aarch64' };
  return targets.some((t) => (aliases[t] ?? t) === plan.arch);
}
