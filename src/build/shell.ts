// `-i` / `--interactive`: after a failed step, a shell on the user's terminal inside that step's sandbox —
// same root, mounts, user, environment and working directory — with the step's script saved in the
// workspace. Exiting the shell ends the build as failed, with the usual cleanup.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runner } from '../runners/runner.ts';
import type { ProgressRenderer } from './progress.ts';
import type { Session } from './session.ts';

/** Where the failed step's script is saved, relative to the workspace (/home/build in the sandbox). */
export const FAILED_STEP_SCRIPT = '.builder/failed-step.sh';
const SANDBOX_WORKSPACE = '/home/build';

/** bash when the root has it, else sh; both interactive. */
const SHELL = ['/bin/sh', '-c', 'if [ -x /bin/bash ]; then exec /bin/bash -i; fi; exec /bin/sh -i'];

export interface Terminal {
  isTTY: boolean;
}

/** Opens the shell for the session's failed step, when there is one, a terminal and a runner that can. */
export async function openShell(
  session: Session,
  runner: Runner,
  progress: ProgressRenderer,
  terminal: { stdin: Terminal; stdout: Terminal } = { stdin: process.stdin, stdout: process.stdout },
): Promise<void> {
  const failed = session.failedStep;
  if (!failed) return;
  if (!terminal.stdin.isTTY || !terminal.stdout.isTTY) {
    progress.note('--interactive: needs a terminal (stdin and stdout are not one); no shell opened');
    return;
  }
  if (!runner.runInteractive) {
    progress.note(`--interactive: the ${runner.name} runner cannot open a shell in its sandbox; no shell opened`);
    return;
  }
  const ws = session.workspace;
  const script = join(ws.dir, FAILED_STEP_SCRIPT);
  await mkdir(join(ws.dir, '.builder'), { recursive: true });
  await writeFile(script, `# ${failed.packageName}: ${failed.title} (${failed.step.source}), run as: ${failed.argv.slice(0, 2).join(' ')} … with set -e\n${failed.step.script}\n`);
  progress.note(`--interactive: ${failed.packageName}: ${failed.title} failed; a shell in its sandbox, in ${failed.step.workdir}`);
  progress.note(`  the step's script: ${SANDBOX_WORKSPACE}/${FAILED_STEP_SCRIPT} (on the host: ${script}); exit the shell to end the build`);
  const env = { ...failed.env, TERM: process.env.TERM ?? 'xterm', PS1: `[builder ${failed.packageName}] \\w \\$ ` };
  // Ctrl-C belongs to the shell while it runs, not to the build (whose handler would abort it).
  const listeners = process.listeners('SIGINT');
  process.removeAllListeners('SIGINT');
  const ignore = () => undefined;
  process.on('SIGINT', ignore);
  try {
    const code = await runner.runInteractive(SHELL, { env, workdir: failed.step.workdir });
    ws.log.write(`# --interactive: the shell exited with ${code}\n`);
  } finally {
    process.off('SIGINT', ignore);
    for (const l of listeners) process.on('SIGINT', l);
  }
}
