// One build session: the skeleton `build`, `test`, `--verify-reproducible`, `rebuild` and `--resume` share.
// Its stages (sources → root → sandbox → steps → packages → index) are run one at a time and return their
// values; the session owns what they leave behind (the root, the sandbox, the workspace) and one AbortSignal
// (Ctrl-C plus package.timeout) that reaches every stage. Cleanup runs in reverse order on success, failure,
// timeout and interruption; a failed session keeps its workspace.
import type { EnvironmentProvider, EnvironmentSpec, PreparedRoot } from '../environment/provider.ts';
import { BuilderError } from '../errors.ts';
import type { PodConfig, Runner } from '../runners/runner.ts';
import type { ProgressRenderer, Task, TaskContext } from './progress.ts';
import type { PlannedStep } from './steps.ts';
import type { Workspace } from './workspace.ts';

/** Raised when a session failed after its workspace existed; carries where it was kept. */
export class BuildFailedError extends BuilderError {
  override name = 'BuildFailedError';
  readonly workspace: string | undefined;
  constructor(cause: unknown, workspace: string | undefined) {
    const inner = cause instanceof Error ? cause : new Error(String(cause));
    super(inner.message, { cause: inner, details: cause instanceof BuilderError ? cause.details : [] });
    this.workspace = workspace;
  }
}

export interface SessionOptions {
  /** The package the session builds or tests, for messages. */
  label: string;
  /** What the session does, for the timeout message (default `build`). */
  activity?: 'build' | 'test';
  /** package.timeout (or `--timeout`): bounds every stage like Ctrl-C does; `setting` names it in the error. */
  timeout?: { seconds: number; setting: string };
  /** The caller's signal (Ctrl-C). */
  signal?: AbortSignal;
  progress: ProgressRenderer;
  keepWorkspace: boolean;
}

/** The run's bound: the plan's timeout, which is `--timeout` when the flag gave it, else package.timeout. */
export function sessionTimeout(seconds: number | undefined, fromFlag = false): SessionOptions['timeout'] {
  return seconds ? { seconds, setting: fromFlag ? '--timeout' : 'package.timeout' } : undefined;
}

/** Runs after a failure, while the sandbox still stands (a shell in it, its recording, its workspace back). */
export type FailureHook = (failure: BuildFailedError, session: Session) => Promise<void>;

export class Session {
  readonly signal: AbortSignal | undefined;
  readonly progress: ProgressRenderer;
  /** The step that failed (or is running), for a shell in its sandbox. */
  failedStep: PlannedStep | undefined;
  readonly #timeout: AbortSignal | undefined;
  readonly #options: SessionOptions;
  #workspace: Workspace | undefined;
  #cleanups: (() => Promise<void>)[] = [];
  #failureHooks: FailureHook[] = [];
  #sandboxStarted = false;

  constructor(options: SessionOptions) {
    this.#options = options;
    this.progress = options.progress;
    this.#timeout = options.timeout ? AbortSignal.timeout(options.timeout.seconds * 1000) : undefined;
    const signals = [options.signal, this.#timeout].filter((x): x is AbortSignal => x !== undefined);
    this.signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
  }

  get workspace(): Workspace {
    if (!this.#workspace) throw new BuilderError('build session: no workspace yet');
    return this.#workspace;
  }

  get workspaceRoot(): string | undefined {
    return this.#workspace?.root;
  }

  /** Adopts the workspace; one adopted before the sandbox started may be swapped (a refused resume). */
  async useWorkspace(make: () => Promise<Workspace>): Promise<Workspace> {
    if (this.#sandboxStarted) throw new BuilderError('build session: the workspace cannot change once the sandbox started');
    const previous = this.#workspace;
    this.signal?.throwIfAborted();
    this.#workspace = await make();
    await previous?.closeLog();
    return this.#workspace;
  }

  /** One stage: a progress task whose result is handed back. */
  async stage<T>(title: string, run: (ctx: TaskContext) => Promise<T>): Promise<T> {
    this.signal?.throwIfAborted();
    let value: T | undefined;
    await this.progress.run([{ title, run: async (ctx) => void (value = await run(ctx)) }]);
    return value as T;
  }

  /** A stage drawn as a group of subtasks (the steps of the pipelines). */
  async group(tasks: Task[]): Promise<void> {
    this.signal?.throwIfAborted();
    await this.progress.run(tasks);
  }

  async skip(title: string, reason: string): Promise<void> {
    await this.progress.run([{ title, skip: reason }]);
  }

  /** The root stage: prepared under the session's signal and released when the session ends. */
  root(title: string, provider: EnvironmentProvider, spec: EnvironmentSpec, after?: (root: PreparedRoot, ctx: TaskContext) => Promise<void>): Promise<PreparedRoot> {
    return this.stage(title, async (ctx) => {
      // Tools' own chatter (mmdebstrap, apt) goes to the build log only.
      const root = await provider.prepare(spec, (line) => ctx.output(line), (line) => this.workspace.log.write(`${line}\n`), this.signal);
      this.#cleanups.push(() => root.release());
      ctx.output(root.description);
      await after?.(root, ctx);
      return root;
    });
  }

  /** The sandbox stage: started under the session's signal and terminated when the session ends. */
  async sandbox(runner: Runner, pod: PodConfig): Promise<void> {
    await this.stage(`Start ${runner.name} sandbox`, async (ctx) => {
      this.#sandboxStarted = true;
      this.#cleanups.push(() => runner.terminate());
      await runner.start({ ...pod, log: (line) => ctx.output(line) }, this.signal);
    });
  }

  onFailure(hook: FailureHook): void {
    this.#failureHooks.push(hook);
  }

  /** Whether the failure is the caller's interruption (nothing is kept, no hook runs). */
  get interrupted(): boolean {
    return this.#options.signal?.aborted ?? false;
  }

  get timedOut(): boolean {
    return (this.#timeout?.aborted ?? false) && !this.interrupted;
  }

  /** Maps a stage's error to the session's failure, running the failure hooks first. */
  async fail(err: unknown): Promise<BuildFailedError> {
    const keep = this.#workspace !== undefined && !this.interrupted;
    const cause = this.timedOut
      ? new BuilderError(`${this.#options.label}: the ${this.#options.activity ?? 'build'} exceeded ${this.#options.timeout?.setting} (${this.#options.timeout?.seconds}s)`, { cause: err })
      : err;
    const failure = new BuildFailedError(cause, keep || (this.#options.keepWorkspace && this.#workspace) ? this.#workspace?.root : undefined);
    if (!this.interrupted && !this.signal?.aborted) {
      for (const hook of this.#failureHooks) await hook(failure, this);
    }
    return failure;
  }

  /** Ends the session: everything in reverse order; the workspace kept when asked or failed. */
  async close(keep: boolean): Promise<void> {
    for (const cleanup of this.#cleanups.reverse()) await cleanup().catch(() => undefined);
    this.#cleanups = [];
    if (this.#workspace) {
      if (keep) await this.#workspace.closeLog();
      else await this.#workspace.remove();
    }
  }
}

/**
 * Runs body in a session: on failure the error becomes a BuildFailedError (after the failure hooks) and the
 * workspace is kept unless the caller interrupted; on success it is kept only when asked.
 */
export async function withSession<T>(options: SessionOptions, body: (session: Session) => Promise<T>): Promise<{ value: T; workspace?: string }> {
  const session = new Session(options);
  let keep = options.keepWorkspace;
  try {
    const value = await body(session);
    const root = session.workspaceRoot;
    return { value, ...(keep && root ? { workspace: root } : {}) };
  } catch (err) {
    const failure = await session.fail(err);
    keep = failure.workspace !== undefined;
    throw failure;
  } finally {
    await session.close(keep);
  }
}
