// `builder … | head`: a reader that goes away early ends the command quietly (no EPIPE stack trace).
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { BUILDER, hasStackTrace } from '../helpers/cli.ts';

/** Runs builder with its stdout piped into a reader that has already exited. */
async function intoClosedPipe(args: string[]): Promise<{ exitCode: number | undefined; stderr: string }> {
  // `true` exits at once, long before Node has started, so every write of builder meets a closed pipe.
  const r = await execa('bash', ['-c', 'set -o pipefail; "$0" "$@" | true', process.execPath, BUILDER, ...args], { reject: false });
  return { exitCode: r.exitCode, stderr: r.stderr };
}

describe('closed stdout', () => {
  it.each([[['build', '--help']], [['--help']], [['version']]])('builder %j ends quietly', async (args) => {
    const r = await intoClosedPipe(args);
    expect(hasStackTrace(r.stderr)).toBe(false);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });
});
