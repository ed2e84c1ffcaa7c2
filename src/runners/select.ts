// Picks the sandbox a build runs in, from the runners this build knows about (in order of preference).
import { BuilderError, MissingToolError, UsageError } from '../errors.ts';
import type { Runner } from './runner.ts';

export const RUNNER_NAMES = ['bubblewrap', 'qemu', 'auto'] as const;
export type RunnerName = (typeof RUNNER_NAMES)[number];

export function isRunnerName(name: string): name is RunnerName {
  return (RUNNER_NAMES as readonly string[]).includes(name);
}

/**
 * `auto` → the first usable candidate, in the order given. A named runner must be among the candidates and
 * usable; its own reason is reported otherwise, so the user learns what to install rather than that
 * something, somewhere, is missing.
 */
export async function selectRunner(name: string, candidates: Runner[], flag = '--runner'): Promise<Runner> {
  if (!isRunnerName(name)) {
    throw new UsageError(`${flag}: unknown runner "${name}" (valid: ${RUNNER_NAMES.join(', ')})`);
  }
  if (name === 'auto') {
    const reasons: string[] = [];
    for (const runner of candidates) {
      const usability = await runner.testUsability();
      if (usability.usable) return runner;
      reasons.push(`${runner.name}: ${usability.reason}`);
    }
    if (candidates.length === 0) throw new BuilderError(`${flag} auto: no runners are available in this build`);
    throw new MissingToolError(`${flag} auto: no usable runner on this host`, { details: reasons });
  }
  const runner = candidates.find((r) => r.name === name);
  if (runner === undefined) {
    const available = candidates.map((r) => r.name);
    throw new BuilderError(
      `${flag} ${name}: this runner is not available in this build` +
        (available.length > 0 ? ` (available: ${available.join(', ')})` : ''),
    );
  }
  const usability = await runner.testUsability();
  if (!usability.usable) throw new MissingToolError(`${flag} ${name}: ${usability.reason}`);
  return runner;
}
