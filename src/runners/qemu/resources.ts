// What a step cost, measured inside the guest: the build channel runs every step under busybox time, outside
// the build root, which writes "WALL USER SYSTEM MAXRSS" (seconds, seconds, seconds, KiB; getrusage of the
// step and everything it waited for) to /run/builder/steps/<id>.rusage, preceded by a line when the step did
// not exit normally. Read (and removed) over the control channel after the step.
import type { StepResources } from '../runner.ts';
import type { SshConnection } from './ssh.ts';

export interface MeasuredStep {
  resources?: StepResources;
  /** The signal that killed the step, when one did (busybox time then exits with its bare number). */
  signal?: number;
}

export function parseStepResources(text: string): MeasuredStep {
  const out: MeasuredStep = {};
  const killed = /Command terminated by signal (\d+)/.exec(text);
  if (killed) out.signal = Number(killed[1]);
  const m = /^([\d.]+) ([\d.]+) ([\d.]+) (\d+)$/m.exec(text.trim().split('\n').at(-1) ?? '');
  if (m) out.resources = { wallMs: Number(m[1]) * 1000, userMs: Number(m[2]) * 1000, systemMs: Number(m[3]) * 1000, maxRssKiB: Number(m[4]) };
  return out;
}

export async function stepResources(control: SshConnection, id: string): Promise<MeasuredStep> {
  if (control.isClosed) return {};
  let text = '';
  const file = `/run/builder/steps/${id}.rusage`;
  await control
    .exec(`cat ${file} 2>/dev/null; rm -f ${file} /run/builder/steps/${id}`, { onStdout: (c) => (text += c.toString('utf8')) })
    .catch(() => undefined);
  return parseStepResources(text);
}
