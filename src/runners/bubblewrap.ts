// The Bubblewrap runner: one `bwrap` process per command, no daemon and no state between commands. The
// sandbox is assembled from the build root's mounts plus the standard ones (/dev, /proc, /tmp, the workspace,
// the cache), every namespace unshared (network only when the pod allows it), a fixed uid/gid, an explicit
// capability set and a seccomp filter denying the syscalls a build has no business making.
import { lstatSync, readlinkSync, statSync } from 'node:fs';
import { lstat, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { BuilderError, MissingToolError } from '../errors.ts';
import type { Mount, PodConfig, RunOptions, Runner, StepResources, Usability } from './runner.ts';
import { type RootNode, resolveInRoot } from '../paths/in-root.ts';
import { SECCOMP_FD, type SandboxSeal, sealArgs } from '../sandbox/bwrap-seal.ts';
import { findExecutable } from './which.ts';

export interface BubblewrapRunnerOptions {
  /** `bwrap` executable: a path, or a name looked up on PATH (default `bwrap`). */
  bwrapPath?: string;
  /**
   * Debug mode: leave out `--new-session` (kept only for non-interactive runs) and put the full bwrap command
   * line in the details of a sandbox setup failure.
   */
  debug?: boolean;
}

const WORKSPACE_DIR = '/home/build';
const CACHE_DIR = '/var/cache/melange';
const RESOLV_CONF = '/etc/resolv.conf';
const USABILITY_TIMEOUT_MS = 10_000;
/** bwrap's prefix on its own error messages. */
const BWRAP_MESSAGE_PREFIX = Buffer.from('bwrap: ');
/** bwrap's JSON status stream, the descriptor after the seccomp program's (SECCOMP_FD). */
const STATUS_FD = SECCOMP_FD + 1;
/** Where the resource wrapper reports what the command cost. */
const RUSAGE_FD = STATUS_FD + 1;
/** getrusage's and prctl's syscall numbers, for the wrapper; where unknown, steps run unmeasured. */
const SYSCALLS: Partial<Record<string, { getrusage: number; prctl: number }>> = {
  x64: { getrusage: 98, prctl: 157 },
  arm64: { getrusage: 165, prctl: 167 },
  riscv64: { getrusage: 165, prctl: 167 },
};

/**
 * The host-side wrapper that measures a step: Node cannot get a child's rusage, so bwrap runs under Perl
 * (perl-base is Essential on Debian), which forks it, waits, and writes getrusage(RUSAGE_CHILDREN) to
 * RUSAGE_FD as "user_us system_us maxrss_kib". bwrap does not wait for its sandbox's init (which reaped the
 * step), so the wrapper is a child subreaper (PR_SET_CHILD_SUBREAPER): the orphaned init comes to it and is
 * reaped there, which adds the whole sandbox to its children's account. Its
 * exit status is bwrap's (a signal is re-raised), and RUSAGE_FD is closed before bwrap starts, so the sandbox
 * never sees it. Nothing is taken from the build root.
 */
function rusageWrapper(nr: { getrusage: number; prctl: number }): string {
  return [
    `syscall(${nr.prctl}, 36, 1, 0, 0, 0);`,
    'my $pid = fork;',
    'die "builder: fork: $!\\n" unless defined $pid;',
    `if ($pid == 0) { open(my $r, '>&=', ${RUSAGE_FD}) and close($r); exec { $ARGV[0] } @ARGV; die "builder: cannot run $ARGV[0]: $!\\n"; }`,
    'waitpid($pid, 0);',
    'my $status = $?;',
    '1 while waitpid(-1, 0) > 0;',
    'my $buf = "\\0" x 144;',
    `if (syscall(${nr.getrusage}, -1, $buf) == 0 && open(my $out, '>&=', ${RUSAGE_FD})) {`,
    "  my ($us, $uu, $ss, $su, $rss) = unpack('q5', $buf);",
    '  printf $out "%d %d %d\\n", $us * 1000000 + $uu, $ss * 1000000 + $su, $rss;',
    '  close($out);',
    '}',
    'if ($status & 127) { kill($status & 127, $$); exit(128 + ($status & 127)); }',
    'exit($status >> 8);',
  ].join('\n');
}

function parseRusage(text: string, wallMs: number): StepResources | undefined {
  const m = /^(\d+) (\d+) (\d+)\n$/.exec(text);
  if (!m) return undefined;
  return { wallMs, userMs: Number(m[1]) / 1000, systemMs: Number(m[2]) / 1000, maxRssKiB: Number(m[3]) };
}

// ---------------------------------------------------------------------------------------------------------
// Paths

function isWithin(child: string, parent: string): boolean {
  return parent === '/' || child === parent || child.startsWith(`${parent}/`);
}

/** Where a sandbox path lives on the host, following the mount table only (later mounts shadow earlier ones). */
function hostPathOf(mounts: readonly Mount[], sandboxPath: string): { hostPath: string; mount: Mount } | null {
  for (let i = mounts.length - 1; i >= 0; i--) {
    const mount = mounts[i];
    if (mount === undefined || !isWithin(sandboxPath, mount.target)) continue;
    const rest = path.posix.relative(mount.target, sandboxPath);
    return { hostPath: rest === '' ? mount.source : path.join(mount.source, rest), mount };
  }
  return null;
}

/**
 * Reads a file as the sandbox would see it, resolving symlinks component by component in the sandbox's
 * namespace (an absolute link inside a root directory must not be followed on the host). null when absent.
 */
async function readThroughMounts(mounts: readonly Mount[], sandboxFile: string): Promise<string | null> {
  const lookup = (rel: string): RootNode => {
    const located = hostPathOf(mounts, `/${rel}`);
    if (located === null) return { kind: 'missing' };
    // A mount point is whatever its source resolves to on the host (bwrap follows the source's links).
    try {
      const info = located.mount.target === `/${rel}` ? statSync(located.hostPath) : lstatSync(located.hostPath);
      if (info.isSymbolicLink()) return { kind: 'link', target: readlinkSync(located.hostPath) };
      return { kind: info.isDirectory() ? 'directory' : 'other' };
    } catch {
      return { kind: 'missing' };
    }
  };
  const result = resolveInRoot(sandboxFile, lookup);
  const located = result.ok ? hostPathOf(mounts, `/${result.rel}`) : null;
  if (located === null) return null;
  try {
    return await readFile(located.hostPath, 'utf8');
  } catch {
    return null;
  }
}

async function requireDirectory(dir: string, what: string, pkg: string): Promise<void> {
  let info;
  try {
    info = await stat(dir);
  } catch (err) {
    throw new BuilderError(`${pkg}: ${what} ${dir} does not exist`, { cause: err });
  }
  if (!info.isDirectory()) throw new BuilderError(`${pkg}: ${what} ${dir} is not a directory`);
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    // Negative pid: bwrap was spawned detached, so it leads its own process group. Its sandbox init carries
    // PDEATHSIG (--die-with-parent), and the whole pid namespace goes down with that init.
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

// ---------------------------------------------------------------------------------------------------------

interface PreparedPod {
  pod: PodConfig;
  bwrap: string;
  /** Root mounts, standard mounts, resolv.conf and extra mounts: everything before the per-run workdir. */
  mountArgs: string[];
  /** `--remount-ro /` when `/` is bwrap's own tmpfs, which must stay writable until the workdir exists. */
  sealRootArgs: string[];
  /** Namespaces, identity, capabilities, descriptors, `--clearenv`. */
  flagArgs: string[];
  seccomp: Buffer | null;
  /** What flagArgs were made from, for an interactive run (which keeps the terminal). */
  seal: SandboxSeal;
  /** Perl and getrusage's syscall number, when steps can be measured. */
  rusage: { perl: string; script: string } | null;
}

interface RunningChild {
  pid: number | undefined;
  done: Promise<unknown>;
  /** Set by terminate(), so the interrupted run reports why it ended. */
  terminated: boolean;
}

export class BubblewrapRunner implements Runner {
  readonly name = 'bubblewrap';
  private readonly requestedPath: string;
  private readonly debug: boolean;
  private usability: Promise<{ usability: Usability; path: string | null }> | undefined;
  private prepared: PreparedPod | undefined;
  private readonly children = new Set<RunningChild>();

  constructor(options: BubblewrapRunnerOptions = {}) {
    this.requestedPath = options.bwrapPath ?? 'bwrap';
    this.debug = options.debug ?? false;
  }

  testUsability(): Promise<Usability> {
    return this.probe().then((p) => p.usability);
  }

  private probe(): Promise<{ usability: Usability; path: string | null }> {
    this.usability ??= (async () => {
      const found = await findExecutable(this.requestedPath);
      if (found === null) {
        const where = this.requestedPath === 'bwrap' ? '' : `: ${this.requestedPath} not found or not executable`;
        return {
          usability: { usable: false, reason: `bwrap is not installed (apt-get install bubblewrap)${where}` },
          path: null,
        };
      }
      const result = await execa(found, ['--unshare-user', '--unshare-net', '--ro-bind', '/', '/', 'true'], {
        reject: false,
        timeout: USABILITY_TIMEOUT_MS,
        stdin: 'ignore',
      });
      if (result.exitCode === 0) return { usability: { usable: true }, path: found };
      const why = result.stderr.trim() || result.shortMessage;
      return {
        usability: {
          usable: false,
          reason: `${found} cannot create a sandbox here (unprivileged user namespaces may be disabled): ${why}`,
        },
        path: found,
      };
    })();
    return this.usability;
  }

  async start(pod: PodConfig): Promise<void> {
    const pkg = pod.packageName;
    const probe = await this.probe();
    if (!probe.usability.usable) throw new MissingToolError(`${pkg}: ${probe.usability.reason}`);
    if (probe.path === null) throw new MissingToolError(`${pkg}: bwrap is not installed (apt-get install bubblewrap)`);

    await requireDirectory(pod.workspaceDir, 'workspace directory', pkg);
    await requireDirectory(pod.cacheDir, 'cache directory', pkg);
    const allMounts = [...pod.root.mounts, ...pod.mounts];
    for (const mount of allMounts) {
      if (!path.posix.isAbsolute(mount.target)) {
        throw new BuilderError(`${pkg}: mount target ${mount.target} is not an absolute path`);
      }
      try {
        await stat(mount.source);
      } catch (err) {
        throw new BuilderError(`${pkg}: mount source ${mount.source} (for ${mount.target}) does not exist`, {
          cause: err,
        });
      }
    }

    const bind = (m: Mount): string[] => [m.readonly ? '--ro-bind' : '--bind', m.source, m.target];
    const mountArgs = [
      ...pod.root.mounts.flatMap(bind),
      '--dev', '/dev',
      '--proc', '/proc',
      '--perms', '1777', '--tmpfs', '/tmp',
      '--bind', pod.workspaceDir, WORKSPACE_DIR,
      '--bind', pod.cacheDir, CACHE_DIR,
      ...(pod.network ? await this.resolvConfArgs(pod.root.mounts) : []),
      ...pod.mounts.flatMap(bind),
    ];
    const sealRootArgs = pod.root.mounts.some((m) => m.target === '/') ? [] : ['--remount-ro', '/'];

    const seal: SandboxSeal = { label: pkg, runAs: pod.runAs, network: pod.network, capabilities: pod.capabilities, newSession: !this.debug };
    const sealed = sealArgs(seal);
    const flagArgs = [...sealed.args, '--json-status-fd', String(STATUS_FD)];
    const seccomp = sealed.seccomp;
    const perl = await findExecutable('perl');
    const nr = SYSCALLS[process.arch];
    const rusage = perl !== null && nr !== undefined ? { perl, script: rusageWrapper(nr) } : null;
    if (rusage === null) pod.log?.('bubblewrap: steps are not measured (no perl on this host, or an architecture without a known getrusage)');
    this.prepared = { pod, bwrap: probe.path, mountArgs, sealRootArgs, flagArgs, seccomp, seal, rusage };
  }

  /**
   * Network builds need a resolver configuration. A root that takes /etc/resolv.conf from the host already has
   * it; otherwise the host's is bound over the root's file, or created when the root leaves room for it (a
   * read-only root directory without the file cannot take a new mount point).
   */
  private async resolvConfArgs(rootMounts: readonly Mount[]): Promise<string[]> {
    try {
      await stat(RESOLV_CONF);
    } catch {
      return [];
    }
    const located = hostPathOf(rootMounts, RESOLV_CONF);
    if (located === null) return ['--ro-bind', RESOLV_CONF, RESOLV_CONF];
    if (path.resolve(located.hostPath) === RESOLV_CONF) return [];
    try {
      const info = await lstat(located.hostPath);
      return info.isFile() ? ['--ro-bind', RESOLV_CONF, RESOLV_CONF] : [];
    } catch {
      return located.mount.readonly ? [] : ['--ro-bind', RESOLV_CONF, RESOLV_CONF];
    }
  }

  private requirePrepared(): PreparedPod {
    if (this.prepared === undefined) throw new BuilderError('bubblewrap runner: run() before start()');
    return this.prepared;
  }

  /** The complete bwrap argument list for one command (exposed for logging and debugging). */
  commandLine(argv: readonly string[], options: Pick<RunOptions, 'env' | 'workdir'>, flagArgs?: string[]): string[] {
    const prepared = this.requirePrepared();
    const pkg = prepared.pod.packageName;
    if (argv.length === 0) throw new BuilderError(`${pkg}: empty command`);
    if (!path.posix.isAbsolute(options.workdir)) {
      throw new BuilderError(`${pkg}: working directory ${options.workdir} is not an absolute path`);
    }
    const workdir = path.posix.normalize(options.workdir).replace(/(.)\/+$/, '$1');
    // --dir creates it inside the sandbox, resolved there, so a link planted in the workspace cannot steer a
    // directory creation onto the host.
    const workdirArgs = workdir !== WORKSPACE_DIR && isWithin(workdir, WORKSPACE_DIR) ? ['--dir', workdir] : [];
    const envArgs: string[] = [];
    for (const [key, value] of Object.entries(options.env)) {
      if (key === '' || key.includes('=') || key.includes('\0') || value.includes('\0')) {
        throw new BuilderError(`${pkg}: invalid environment variable ${JSON.stringify(key)}`);
      }
      envArgs.push('--setenv', key, value);
    }
    return [
      ...prepared.mountArgs,
      ...workdirArgs,
      ...prepared.sealRootArgs,
      ...(flagArgs ?? prepared.flagArgs),
      ...envArgs,
      '--chdir', workdir,
      '--',
      ...argv,
    ];
  }

  async run(argv: string[], options: RunOptions): Promise<number> {
    const prepared = this.requirePrepared();
    const pkg = prepared.pod.packageName;
    const args = this.commandLine(argv, options);
    const { signal, onOutput } = options;
    if (signal?.aborted) throw new BuilderError(`${pkg}: command aborted before it started`, { cause: signal.reason });

    const { rusage } = prepared;
    const started = performance.now();
    const [file, fileArgs] = rusage ? [rusage.perl, ['-e', rusage.script, '--', prepared.bwrap, ...args]] : [prepared.bwrap, args];
    const subprocess = execa(file, fileArgs, {
      stdio: ['ignore', 'pipe', 'pipe', prepared.seccomp ?? 'ignore', 'pipe', ...(rusage ? (['pipe'] as const) : [])],
      buffer: false,
      reject: false,
      encoding: 'buffer',
      detached: true,
      stripFinalNewline: false,
    });
    const child: RunningChild = { pid: subprocess.pid, done: subprocess, terminated: false };
    this.children.add(child);

    // bwrap reports its own failures as `bwrap: …` on stderr. Stderr that starts that way is held back until
    // the exit status says whether the command ever ran, so a setup failure is reported once, as the error,
    // instead of also as command output. Anything else streams straight through.
    let held: Buffer[] | null = [];
    let heldBytes = 0;
    let prefixMatched = false;
    subprocess.stdout.on('data', (chunk: Buffer) => onOutput('stdout', chunk));
    subprocess.stderr.on('data', (chunk: Buffer) => {
      if (held === null) {
        onOutput('stderr', chunk);
        return;
      }
      held.push(chunk);
      heldBytes += chunk.length;
      if (prefixMatched) return;
      const head = Buffer.concat(held, Math.min(heldBytes, BWRAP_MESSAGE_PREFIX.length));
      if (head.equals(BWRAP_MESSAGE_PREFIX.subarray(0, head.length))) {
        prefixMatched = head.length === BWRAP_MESSAGE_PREFIX.length;
        return;
      }
      const pending = Buffer.concat(held);
      held = null;
      onOutput('stderr', pending);
    });
    const statusChunks: Buffer[] = [];
    subprocess.stdio[STATUS_FD]?.on('data', (chunk: Buffer) => statusChunks.push(chunk));
    const rusageChunks: Buffer[] = [];
    subprocess.stdio[RUSAGE_FD]?.on('data', (chunk: Buffer) => rusageChunks.push(chunk));

    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      killGroup(subprocess.pid);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    let result;
    try {
      result = await subprocess;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.children.delete(child);
    }

    const heldStderr = held === null ? Buffer.alloc(0) : Buffer.concat(held);
    if (aborted) throw new BuilderError(`${pkg}: command aborted: ${argv.join(' ')}`, { cause: signal?.reason });
    if (child.terminated) throw new BuilderError(`${pkg}: command killed: the sandbox was terminated`);

    // bwrap writes `{ "exit-code": N }` only once the command was actually executed.
    const status = Buffer.concat(statusChunks).toString('utf8');
    const exit = /"exit-code"\s*:\s*(\d+)/.exec(status);
    if (exit?.[1] !== undefined) {
      if (heldStderr.length > 0) onOutput('stderr', heldStderr);
      const resources = parseRusage(Buffer.concat(rusageChunks).toString('utf8'), performance.now() - started);
      if (resources) options.onResources?.(resources);
      return Number(exit[1]);
    }
    if (result.failed && result.exitCode === undefined && result.signal === undefined) {
      throw new MissingToolError(`${pkg}: cannot start ${prepared.bwrap}: ${result.shortMessage}`, {
        cause: result.cause,
      });
    }
    const lines = heldStderr.toString('utf8').split('\n').filter((l) => l !== '');
    const message = lines.map((l) => (l.startsWith('bwrap: ') ? l.slice('bwrap: '.length) : l)).join('; ');
    const how = result.signal === undefined ? `exit code ${result.exitCode}` : `signal ${result.signal}`;
    const commandLine = [prepared.bwrap, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)));
    throw new BuilderError(
      `${pkg}: bwrap could not run ${JSON.stringify(argv[0])} in the sandbox: ${message || how}`,
      { details: this.debug ? [...lines, `command: ${commandLine.join(' ')}`] : lines },
    );
  }

  /**
   * The same sandbox as run()'s, on the calling terminal: no `--new-session` (the shell needs its controlling
   * terminal for job control) and in builder's own process group, so the terminal's signals reach it.
   */
  async runInteractive(argv: string[], options: Pick<RunOptions, 'env' | 'workdir'>): Promise<number> {
    const prepared = this.requirePrepared();
    const sealed = sealArgs({ ...prepared.seal, newSession: false });
    const args = this.commandLine(argv, options, sealed.args);
    const subprocess = execa(prepared.bwrap, args, { stdio: ['inherit', 'inherit', 'inherit', sealed.seccomp ?? 'ignore'], reject: false });
    const child: RunningChild = { pid: subprocess.pid, done: subprocess, terminated: false };
    this.children.add(child);
    try {
      const result = await subprocess;
      return result.exitCode ?? 128;
    } finally {
      this.children.delete(child);
    }
  }

  async workspaceTar(): Promise<Readable | null> {
    return null;
  }

  async releaseData(): Promise<string> {
    const prepared = this.requirePrepared();
    const mounts = [...prepared.pod.root.mounts, ...prepared.pod.mounts];
    return (await readThroughMounts(mounts, '/etc/os-release')) ?? '';
  }

  async terminate(): Promise<void> {
    const running = [...this.children];
    for (const child of running) {
      child.terminated = true;
      killGroup(child.pid);
    }
    await Promise.allSettled(running.map((c) => c.done));
    this.children.clear();
  }
}
