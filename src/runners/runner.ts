// The contract every sandbox implements. Runners see only plain data (a PodConfig and argv lists); they
// never see recipes. Keep this file small: it is the seam between the build and the sandboxes.
import type { Readable } from 'node:stream';

/** A host path made visible inside the sandbox. */
export interface Mount {
  source: string;
  target: string;
  readonly: boolean;
}

/** The filesystem a build runs in, as prepared by an environment provider. */
export interface BuildRoot {
  /** Human description for logs, e.g. `host (not hermetic)` or `dir:/var/cache/builder/roots/ab12…`. */
  description: string;
  /** Mounts that make up `/`, in order. A directory root is one mount of that directory at `/`. */
  mounts: Mount[];
  /** The whole root as one host directory, when the root is one (VM runners need it). */
  directory?: string;
  /** Content digest of a cached root, for runners that cache artefacts derived from it (VM disk images). */
  digest?: string;
}

export interface PodConfig {
  /** Name of the package being built, for logs and temp names. */
  packageName: string;
  root: BuildRoot;
  /** Host directory bound read-write at /home/build. */
  workspaceDir: string;
  /** Host directory bound read-write at /var/cache/melange. */
  cacheDir: string;
  /**
   * The entries of cacheDir the steps need (fetched sources, git checkouts), for runners that would copy only
   * these; the Bubblewrap runner binds the directory and the QEMU runner copies it whole, both ways.
   */
  cacheEntries?: string[];
  /** Extra mounts after the standard ones. */
  mounts: Mount[];
  network: boolean;
  /**
   * With network: the only destinations (host or address, port) a connection may reach, enforced at connect
   * time by runners that can (the VM's user-mode network); absent or empty means any.
   */
  networkAllow?: { host: string; port: number }[];
  /** uid/gid the steps run as. */
  runAs: { uid: number; gid: number };
  arch: string;
  resources: { cpu?: string; memory?: string; disk?: string };
  capabilities: { add: string[]; drop: string[] };
  /** Progress lines from the sandbox itself (VM boot, images it caches), shown with the start task. */
  log?: (line: string) => void;
}

export type OutputStream = 'stdout' | 'stderr';

/** What one command cost, measured by the sandbox (the host's accounting, or the guest's in a VM). */
export interface StepResources {
  wallMs: number;
  /** CPU time of the command and every descendant it waited for. */
  userMs: number;
  systemMs: number;
  /** Peak resident set size of the largest of those processes (getrusage's ru_maxrss), in KiB. */
  maxRssKiB: number;
}

export interface RunOptions {
  /** The complete environment of the command (runners add nothing implicitly). */
  env: Record<string, string>;
  /** Absolute directory inside the sandbox. */
  workdir: string;
  onOutput: (stream: OutputStream, chunk: Buffer) => void;
  signal?: AbortSignal;
  /** Called before run() resolves with what the command cost, when the runner can measure it. */
  onResources?: (resources: StepResources) => void;
}

export type Usability = { usable: true } | { usable: false; reason: string };

export interface Runner {
  readonly name: string;
  /** Whether the tool is installed and actually works on this host. Cheap enough to call on every build. */
  testUsability(): Promise<Usability>;
  /**
   * Prepare the sandbox (boot a VM, prime caches). Called once per build before the first run; the signal
   * (Ctrl-C, package.timeout) stops a start in progress.
   */
  start(pod: PodConfig, signal?: AbortSignal): Promise<void>;
  /** Run one command; resolves to its exit code. Rejects only when the sandbox itself fails. */
  run(argv: string[], options: RunOptions): Promise<number>;
  /** Optional (`-i`): run one command in the same sandbox as run() would, on the calling terminal. */
  runInteractive?(argv: string[], options: Pick<RunOptions, 'env' | 'workdir'>): Promise<number>;
  /**
   * A tar stream of /home/build/melange-out when the workspace is not already visible on the host
   * (VM runners); null when it is a bind mount.
   */
  workspaceTar(): Promise<Readable | null>;
  /** The sandbox's /etc/os-release text ('' when the root has none). */
  releaseData(): Promise<string>;
  /** Tear the sandbox down. Safe to call more than once and after a failed start. */
  terminate(): Promise<void>;
}
