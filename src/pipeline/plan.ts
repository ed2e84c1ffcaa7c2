// The compiled build plan: plain, serialisable data. Runners and the packager consume this; nothing past
// the compiler ever sees YAML.

export interface StepPlan {
  /** Display name: the step's `name`, else the first line of its script. */
  name: string;
  /** Shell script body (substitutions applied); run as `/bin/sh -c` after `set -e`. */
  script: string;
  /** Absolute directory inside the sandbox. */
  workdir: string;
  /** Variables this step adds over the build environment (step `environment`, inherited by nesting). */
  env: Record<string, string>;
  /** Where the step was written, `file:line:col`. */
  source: string;
}

export interface DependenciesPlan {
  runtime: string[];
  provides: string[];
  replaces: string[];
  providerPriority?: number;
  replacesPriority?: number;
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
  /** Scriptlet name (`pre-install`, …, `trigger`) → script. */
  scriptlets: Record<string, string>;
  triggerPaths: string[];
  steps: StepPlan[];
}

export interface EnvironmentPlan {
  repositories: string[];
  keyring: string[];
  packages: string[];
  /** Base environment of every step (recipe `environment.environment` over the defaults). */
  env: Record<string, string>;
  runAs: { uid: number; gid: number };
}

export interface BuildPlan {
  recipeFile: string;
  arch: string;
  environment: EnvironmentPlan;
  capabilities: { add: string[]; drop: string[] };
  resources: { cpu?: string; memory?: string; disk?: string };
  /** Main package first, then subpackages in recipe order. */
  packages: PackagePlan[];
}

export const WORKSPACE = '/home/build';
export const OUT_DIR = `${WORKSPACE}/melange-out`;
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
