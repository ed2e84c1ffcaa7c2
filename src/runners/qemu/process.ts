// The QEMU process: found on PATH (with the package to install when it is not), started so that it dies with
// us even if we are killed outright (PR_SET_PDEATHSIG through util-linux's setpriv), and always reaped.
import type { Readable } from 'node:stream';
import { execa, type ResultPromise } from 'execa';
import { MissingToolError } from '../../errors.ts';
import { findExecutable } from '../which.ts';

export const QEMU_BINARY = 'qemu-system-x86_64';
export const QEMU_PACKAGE = 'qemu-system-x86';
const STDERR_KEEP = 8192;

export interface QemuTools {
  qemu: string;
  /** util-linux setpriv, used for --pdeathsig; null when absent (QEMU then relies on our own cleanup). */
  setpriv: string | null;
}

export async function findQemuTools(binary: string = QEMU_BINARY, searchPath: string = process.env.PATH ?? ''): Promise<QemuTools> {
  const qemu = await findExecutable(binary, searchPath);
  if (qemu === null) {
    throw new MissingToolError(
      binary === QEMU_BINARY
        ? `${QEMU_BINARY} is not installed (apt-get install --no-install-recommends ${QEMU_PACKAGE})`
        : `QEMU binary ${binary} not found or not executable`,
    );
  }
  return { qemu, setpriv: await findExecutable('setpriv', `${searchPath}:/usr/bin:/bin`) };
}

export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

export interface QemuProcess {
  readonly pid: number;
  /** Settles once the process has been reaped. */
  readonly exited: Promise<ExitStatus>;
  readonly hasExited: () => boolean;
  /** The last few KB QEMU wrote to stderr (its own error messages). */
  readonly stderrText: () => string;
  readonly stdout: Readable | null;
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once reaped. */
  stop(graceMs: number): Promise<ExitStatus>;
}

export interface SpawnOptions {
  /** Extra environment (TMPDIR for QEMU's snapshot files). */
  env?: Record<string, string>;
  stdout?: boolean;
}

export function spawnQemu(tools: QemuTools, args: string[], options: SpawnOptions = {}): QemuProcess {
  const [file, argv] = tools.setpriv ? [tools.setpriv, ['--pdeathsig', 'KILL', '--', tools.qemu, ...args]] : [tools.qemu, args];
  const child: ResultPromise = execa(file, argv, {
    stdin: 'ignore',
    stdout: options.stdout ? 'pipe' : 'ignore',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    env: options.env,
    cleanup: true,
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEEP);
  });
  let done = false;
  const exited: Promise<ExitStatus> = child.then(
    (r) => {
      done = true;
      // Not started at all (e.g. ENOENT): execa's message is the only explanation there is.
      if (r.failed && r.exitCode === undefined && r.signal === undefined) stderr += r.shortMessage;
      return { code: r.exitCode ?? null, signal: r.signal ?? null };
    },
    () => {
      done = true;
      return { code: null, signal: null };
    },
  );
  const kill = (signal: NodeJS.Signals): void => {
    if (done) return;
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  };
  return {
    pid: child.pid ?? -1,
    exited,
    hasExited: () => done,
    stderrText: () => stderr.trim(),
    stdout: child.stdout ?? null,
    kill,
    async stop(graceMs: number): Promise<ExitStatus> {
      if (done) return exited;
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
