// Observability as an optional capability of a runner: the Runner contract stays as it is, and a runner that
// can record what happened in its sandbox also has collectObservability(). The build asks with the type guard.
import type { Runner } from '../runners/runner.ts';
import type { ObservabilityResult } from './recording.ts';

export interface ObservableRunner extends Runner {
  /**
   * Stops recording and hands back what the sandbox did. Called once, after the last step and before
   * terminate(). Null when this sandbox has no recorder (e.g. a custom initramfs without the hook); rejects
   * with ObservabilityError when the recorder is there but its record cannot be read.
   */
  collectObservability(options?: { signal?: AbortSignal }): Promise<ObservabilityResult | null>;
}

export function isObservableRunner(runner: Runner): runner is ObservableRunner {
  return typeof (runner as Partial<ObservableRunner>).collectObservability === 'function';
}
