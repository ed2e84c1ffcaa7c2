// Environment providers turn the recipe's declared environment into a build root.
import type { BuildRoot } from '../runners/runner.ts';

/** `environment.accounts` as plain data (melange/apko shape). */
export interface AccountsSpec {
  /** User name or numeric uid the steps run as (default: the `build` user). */
  runAs?: string;
  users: { username: string; uid?: number; gid?: number; shell?: string; homedir?: string }[];
  groups: { groupname: string; gid?: number; members: string[] }[];
}

/** What a build asks for, as compiled from `environment` (plain data). */
export interface EnvironmentSpec {
  repositories: string[];
  keyring: string[];
  packages: string[];
  arch: string;
  /**
   * Base of the root: `debian:SUITE[:PKG,PKG…][@MIRROR]`, `dir:PATH`, `oci:PATH`, or `host`. When absent, a
   * base-looking entry of `repositories` is used (see docs/environments.md); otherwise the root has no base.
   */
  base?: string;
  accounts?: AccountsSpec;
  /** Accept unsigned or untrusted indexes and packages (`--ignore-signatures`). */
  ignoreSignatures?: boolean;
  /** Run packages' install scriptlets inside the new root (off by default, like `apk add --no-scripts`). */
  runScriptlets?: boolean;
  /** Who asked for each package name (recipe line, pipeline), named in "unmapped"/"unsatisfied" errors. */
  origins?: Record<string, string[]>;
  /** Which environment this is, for messages (default: build). */
  purpose?: 'build' | 'test';
  /** Directory that relative repository, keyring and `dir:`/`oci:` paths are resolved against (default: cwd). */
  baseDir?: string;
  /** Names installed from the repositories even when the base has them (the package `builder test` tests). */
  fromRepositories?: string[];
}

export interface PreparedRoot extends BuildRoot {
  /** Undo whatever prepare() set up that is not cached (temp dirs, overlays). */
  release(): Promise<void>;
  /** uid/gid the steps run as, from `accounts.run-as`, when the provider resolved it. */
  runAs?: { uid: number; gid: number };
}

export interface EnvironmentProvider {
  readonly name: string;
  /**
   * `chatter` receives tools' own output (mmdebstrap, apt) meant for the build log rather than the terminal;
   * `signal` (Ctrl-C, package.timeout) stops a preparation in progress.
   */
  prepare(spec: EnvironmentSpec, log: (line: string) => void, chatter?: (line: string) => void, signal?: AbortSignal): Promise<PreparedRoot>;
}
