// One build, end to end: recipe → compiled plan → build root → runner → workspace → packages → index.
// Each stage is owned by its own module; this file only sequences them and guarantees cleanup.
import { access, constants, mkdir } from 'node:fs/promises';
import { type PreparedSource, prepareSources } from '../sources/prepare.ts';
import { dirname, join, resolve } from 'node:path';
import { loadSigningKey } from '../apk/keys.ts';
import { updateApkIndex } from '../apk/index.ts';
import { loadRecipe } from '../config/load.ts';
import type { EnvironmentProvider, PreparedRoot } from '../environment/provider.ts';
import { BuilderError, errorMessage } from '../errors.ts';
import type { EnvironmentAdditions } from '../seams.ts';
import { compileRecipe } from '../pipeline/compile.ts';
import { type BuildPlan, isArchTargeted } from '../pipeline/plan.ts';
import type { Runner } from '../runners/runner.ts';
import { selectRunner } from '../runners/select.ts';
import type { ProgressRenderer, Task } from './progress.ts';
import { podConfig, retrieveWorkspace, rootSpec, runStep, type StepRecord } from './steps.ts';
import { type BuiltPackage, writePackages } from './package.ts';
import { createWorkspace, defaultSourceDir, type Workspace } from './workspace.ts';
import { lintSettings } from '../lint/settings.ts';
import { NO_NETWORK, type NetworkPolicy } from '../observe/policy.ts';
import { isObservableRunner } from '../observe/observable.ts';
import { checkObservabilitySupport, type ObservabilityOutcome, observeBuild } from '../observe/stage.ts';

export type { BuiltPackage } from './package.ts';

/** What every command that runs a recipe in a sandbox (`build`, `test`) is given. */
export interface SandboxRunOptions {
  recipeFile: string;
  arch: string;
  /** `bubblewrap`, `qemu` or `auto`. */
  runner: string;
  runners: Runner[];
  environmentProvider: EnvironmentProvider;
  /** What the command line adds to the recipe's environment. */
  environment?: EnvironmentAdditions;
  /** The package repository: written by `build`, read by `test`. */
  outDir: string;
  /** Extra pipeline definition directories searched before the built-ins (`--pipeline-dir`). */
  pipelineDirs?: string[];
  /** Recipe `options` to enable (`--build-option`). */
  buildOptions?: string[];
  /** Copied into the workspace; defaults to the recipe's folder. */
  sourceDir?: string;
  cacheDir: string;
  /** Parent of the per-run temp workspace (default: the system temp dir). */
  workspaceDir?: string;
  sourceDateEpoch: number;
  debug: boolean;
  keepWorkspace: boolean;
  /** Variables preloaded into every step's environment (`--env-file`); the recipe's environment wins. */
  env?: Record<string, string>;
  /** Bound in seconds for the whole run when the recipe sets no `package.timeout` (`--timeout`). */
  timeout?: number;
  progress: ProgressRenderer;
  signal?: AbortSignal;
}

export interface BuildOptions extends SandboxRunOptions {
  /** A plan compiled already (`builder rebuild`: the one a package embeds), built instead of compiling recipeFile. */
  plan?: BuildPlan;
  signingKey?: string;
  /** Network access of the steps (`--network`, `--network-allow`); none by default. */
  network?: NetworkPolicy;
  generateIndex: boolean;
  /** Distribution namespace for SBOM purls (`pkg:apk/<namespace>/...`); default `unknown`. */
  namespace?: string;
  /** Linter names forced to errors / warnings (`--lint-require`, `--lint-warn`). */
  lintRequire?: string[];
  lintWarn?: string[];
  persistLintResults?: boolean;
  /** Start from an empty workspace instead of a copy of the source dir (`--empty-workspace`). */
  emptyWorkspace?: boolean;
  /** Leave `origin` out of the packages' metadata, for bootstrap packages (`--strip-origin-name`). */
  stripOriginName?: boolean;
  /** The recipe's git commit recorded in the packages (`--git-commit`); default: detected. */
  gitCommit?: string;
}

export interface BuildResult {
  plan: BuildPlan;
  /** What the sandbox recorded (QEMU runner), for the end of the output. */
  observability?: ObservabilityOutcome;
  packages: BuiltPackage[];
  indexPath?: string;
  /** Set when the workspace was kept. */
  workspace?: string;
  /** Every step that ran, in order, with its wall time, CPU time and peak memory when measured. */
  steps?: StepRecord[];
}

/** Raised when the build failed after the workspace existed; carries where it was kept. */
export class BuildFailedError extends BuilderError {
  override name = 'BuildFailedError';
  readonly workspace: string | undefined;
  constructor(cause: unknown, workspace: string | undefined) {
    const inner = cause instanceof Error ? cause : new Error(String(cause));
    super(inner.message, { cause: inner, details: cause instanceof BuilderError ? cause.details : [] });
    this.workspace = workspace;
  }
}

export async function build(options: BuildOptions): Promise<BuildResult> {
  const recipeFile = resolve(options.recipeFile);
  const plan =
    options.plan ??
    compileRecipe(await loadRecipe(options.recipeFile), {
      arch: options.arch,
      pipelineDirs: options.pipelineDirs,
      buildOptions: options.buildOptions,
    });
  const main = plan.packages[0]!;
  const env = options.environment ?? {};
  for (const n of plan.notices) options.progress.note(n);
  for (const s of plan.skippedPackages) options.progress.note(`skipping subpackage ${s.name}: ${s.reason}`);
  if (!isArchTargeted(plan)) {
    options.progress.note(`skipping ${main.name}: package.target-architecture (${plan.targetArchitecture.join(', ')}) excludes ${plan.arch}`);
    return { plan, packages: [] };
  }
  const archDir = resolve(options.outDir, plan.arch);
  // Everything that can be checked before running anything is checked first.
  await ensureWritableDir(archDir, '--out-dir');
  const key = options.signingKey ? await loadSigningKey(options.signingKey) : undefined;
  const runner = await selectRunner(options.runner, options.runners);
  const network = options.network ?? NO_NETWORK;
  checkObservabilitySupport(runner, network);
  await mkdir(options.cacheDir, { recursive: true });

  // package.timeout bounds the whole build, like Ctrl-C would: steps are killed and everything cleaned up.
  const timeoutSeconds = plan.timeout ?? options.timeout;
  const timeout = timeoutSeconds ? AbortSignal.timeout(timeoutSeconds * 1000) : undefined;
  const signals = [options.signal, timeout].filter((x): x is AbortSignal => x !== undefined);
  const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
  let workspace: Workspace | undefined;
  let root: PreparedRoot | undefined;
  let keep = options.keepWorkspace;
  let built: BuiltPackage[] = [];
  let indexPath: string | undefined;
  let sources: PreparedSource[] = [];
  let observability: ObservabilityOutcome | undefined;
  let started = false;
  let observed = false;
  const steps: StepRecord[] = [];
  let recordFailure: ((details: string[]) => Promise<void>) | undefined;
  try {
    workspace = await createWorkspace({
      parent: options.workspaceDir,
      packageName: main.name,
      sourceDir: options.emptyWorkspace ? undefined : (options.sourceDir ?? (await defaultSourceDir(recipeFile, main.name))),
      exclude: [resolve(options.outDir), resolve(options.cacheDir)],
      packages: plan.packages.map((p) => p.name),
    });
    const ws = workspace;
    const observe = (log: (line: string) => void) =>
      observeBuild({
        runner,
        policy: network,
        pkg: { name: main.name, version: main.version, epoch: main.epoch },
        arch: plan.arch,
        archDir,
        debug: options.debug,
        log,
        signal,
      });
    recordFailure = async (details: string[]) => {
      // A failed build is recorded too (a blocked connection is often why it failed); best effort, so the
      // step's own failure stays the error.
      try {
        const outcome = await observe((line) => ws.log.write(`${line}\n`));
        details.push(...outcome.summary);
      } catch (err) {
        details.push(`observability: ${errorMessage(err)}`);
      }
    };
    const tasks: Task[] = [
      {
        title: 'Fetch sources',
        skip: plan.sources.length > 0 ? undefined : 'no sources',
        run: async (ctx) => {
          sources = await prepareSources(plan, { cacheDir: options.cacheDir, baseDir: dirname(recipeFile), log: (l) => ctx.output(l), signal });
        },
      },
      {
        title: 'Prepare build root',
        run: async (ctx) => {
          root = await options.environmentProvider.prepare(
            rootSpec(plan.environment, env, plan.arch),
            (line) => ctx.output(line),
          );
          ctx.output(root.description);
          ws.log.write(`# build root: ${root.description}\n`);
        },
      },
      {
        title: `Start ${runner.name} sandbox`,
        run: async (ctx) => {
          started = true;
          await runner.start(
            podConfig({
              name: main.name,
              root: root!,
              workspace: ws,
              cacheDir: options.cacheDir,
              runAs: root!.runAs ?? plan.environment.runAs,
              plan,
              cacheEntries: plan.sources.map((src) => src.cacheName),
              network: network.network,
              networkAllow: network.allow.map((rule) => ({ host: rule.host, port: rule.port })),
              log: (line) => ctx.output(line),
            }),
          );
        },
      },
      ...plan.packages.map((pkg): Task => ({
        title: `Pipeline: ${pkg.name}`,
        skip: pkg.steps.length === 0 ? 'no steps' : undefined,
        subtasks: pkg.steps.map((step, i) => ({
          title: `${i + 1}/${pkg.steps.length} ${step.name}`,
          run: async (ctx) => {
            steps.push(
              await runStep(runner, step, ws, ctx, {
                packageName: pkg.name,
                baseEnv: { ...options.env, ...plan.environment.env },
                sourceDateEpoch: options.sourceDateEpoch,
                debug: options.debug,
                signal,
              }),
            );
          },
        })),
      })),
      {
        title: 'Package',
        run: async (ctx) => {
          await retrieveWorkspace(runner, ws);
          // Recorded events are read before the VM goes away; a broken network policy fails the build here,
          // after its report was written.
          observed = true;
          observability = await observe((line) => {
            ws.log.write(`${line}\n`);
            ctx.output(line);
          });
          await runner.terminate();
          built = await writePackages({
            plan,
            treesDir: ws.outDir,
            archDir,
            signingKey: key,
            sourceDateEpoch: options.sourceDateEpoch,
            namespace: options.namespace ?? 'unknown',
            stripOriginName: options.stripOriginName ?? false,
            ...(options.gitCommit ? { gitCommit: options.gitCommit } : {}),
            sources,
            lint: {
              settingsFor: (pkg) =>
                lintSettings({ enabled: pkg.checks.enabled, disabled: pkg.checks.disabled, require: options.lintRequire, warn: options.lintWarn }),
              persist: options.persistLintResults ?? false,
            },
            log: (line) => ctx.output(line),
          });
        },
      },
    ];
    if (options.generateIndex) {
      tasks.push({
        title: 'Update APKINDEX',
        run: async (ctx) => {
          indexPath = join(archDir, 'APKINDEX.tar.gz');
          await updateApkIndex({ path: indexPath, add: built.map((b) => b.entry), signingKey: key });
          ctx.output(indexPath);
        },
      });
    }
    await options.progress.run(tasks);
  } catch (err) {
    if (workspace && !options.signal?.aborted) keep = true;
    const timedOut = timeout?.aborted && !options.signal?.aborted;
    const cause = timedOut ? new BuilderError(`${main.name}: the build exceeded ${plan.timeout ? 'package.timeout' : '--timeout'} (${timeoutSeconds}s)`, { cause: err }) : err;
    const failure = new BuildFailedError(cause, keep ? workspace?.root : undefined);
    if (started && !observed && !signal?.aborted && isObservableRunner(runner)) await recordFailure?.(failure.details);
    throw failure;
  } finally {
    await runner.terminate().catch(() => undefined);
    await root?.release().catch(() => undefined);
    if (workspace) {
      if (keep) await workspace.closeLog();
      else await workspace.remove();
    }
  }
  return { plan, packages: built, indexPath, observability, workspace: keep ? workspace?.root : undefined, steps };
}

async function ensureWritableDir(dir: string, flag: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BuilderError(`${flag}: ${dir} is not writable (${code ?? (err as Error).message})`);
  }
}

