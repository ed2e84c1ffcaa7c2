import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

export const BUILDER = fileURLToPath(new URL('../../bin/builder', import.meta.url));
export const REPO = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved. */
  all: string;
}

/** Run the real CLI (a separate Node process), never throwing on a non-zero exit. */
export async function builder(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  // `--` as in bin/builder's own first line: Node must not read builder's arguments (`--env-file`).
  const r = await execa(process.execPath, ['--', BUILDER, ...args], {
    cwd: options.cwd ?? REPO,
    env: { CI: 'true', SOURCE_DATE_EPOCH: '', ...options.env },
    reject: false,
    all: true,
  });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr, all: r.all };
}

/** A stack trace in user-facing output means an error escaped its typed handling. */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+:\d+:\d+\)?$/m.test(text);
}
