// Environment providers turn the recipe's declared environment into a build root.
import type { BuildRoot } from '../runners/runner.ts';

/** What a build asks for, as compiled from `environment` (plain data). */
export interface EnvironmentSpec {
  repositories: string[];
  keyring: string[];
  packages: string[];
  arch: string;
}

export interface PreparedRoot extends BuildRoot {
  /** Undo whatever prepare() set up that is not cached (temp dirs, overlays). */
  release(): Promise<void>;
}

export interface EnvironmentProvider {
  readonly name: string;
  prepare(spec: EnvironmentSpec, log: (line: string) => void): Promise<PreparedRoot>;
}
