// One build, end to end: recipe → compiled plan → build root → runner → workspace → packages → index.
// Each stage is owned by its own module; this file only sequences them and guarantees cleanup.
import { access, constants, mkdir } from 'node:fs/promises';
import { prepareSources } from '../sources/prepare.ts';
import { basename, dirname, join, resolve } from 'node:path';
import { loadSigningKey } from '../apk/keys.ts';
import { updateApkIndex } from '../apk/index.ts';
import type { EnvironmentProvider } from '../environment/provider.ts';
import { BuilderError, errorMessage } from '../errors.ts';
import type { EnvironmentAdditions } from '../seams.ts';
import { type BuildPlan, isArchTargeted } from '../pipeline/plan.ts';
import type { Runner } from '../runners/runner.ts';
import { selectRunner } from '../runners/select.ts';
import { newJournal, ResumeError } from './journal.ts';
import type { ProgressRenderer } from './progress.ts';
import { findResumable, type ResumeRequest, resumeSteps, sourcesDigest } from './resume.ts';
import { runSteps } from './run-steps.ts';
import { sessionTimeout, withSession } from './session.ts';
import { openShell } from './shell.ts';
import { planSteps, podConfig, retrieveWholeWorkspace, retrieveWorkspace, rootSpec, type StepRecord } from './steps.ts';
import { type BuiltPackage, writePackages } from './package.ts';
import { applyRunLimits, compileRunPlan, type RunLimits } from './run-plan.ts';
import { newInvocationId, writeProvenance } from './provenance.ts';
import { createWorkspace, defaultSourceDir, openWorkspace } from './workspace.ts';
import { lintSettings } from '../lint/settings.ts';
import { NO_NETWORK, type NetworkPolicy } from '../observe/policy.ts';
import { isObservableRunner } from '../observe/observable.ts';
import { checkObservabilitySupport, type ObservabilityOutcome, observeBuild } from '../observe/stage.ts';

export type { BuiltPackage } from './package.ts';
export { BuildFailedError } from './session.ts';

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
  /** Variables over the recipe's `vars` (`--vars-file`). */
  vars?: Record<string, string>;
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
  /** `--timeout`, `--cpu`, `--memory`, `--disk`: over the recipe's package.timeout and package.resources. */
  limits?: RunLimits;
  progress: ProgressRenderer;
  signal?: AbortSignal;
  /** `-i`: on a failed step, a shell in its sandbox on the terminal (when there is one). */
  interactive?: boolean;
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
  /** The recipe file's repository and own license, recorded in the SBOM (`--git-repo-url`, `--license`). */
  recipe?: { repositoryUrl?: string; license?: string };
  /** Write `<name>-<version>-r<epoch>.attest.tar.gz` (SLSA provenance) next to each package (`--generate-provenance`). */
  generateProvenance?: boolean;
  /** `--resume`: continue a failed build's kept workspace, skipping the steps that completed unchanged. */
  resume?: ResumeRequest;
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

export async function build(options: BuildOptions): Promise<BuildResult> {
  const recipeFile = resolve(options.recipeFile);
  const startedOn = new Date();
  const plan = options.plan ? applyRunLimits(options.plan, options.limits) : await compileRunPlan(options);
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
  const sourceDir = options.emptyWorkspace ? undefined : (options.sourceDir ?? (await defaultSourceDir(recipeFile, main.name)));
  const exclude = [resolve(options.outDir), resolve(options.cacheDir)];
  const identity = {
    recipe: recipeFile,
    outDir: resolve(options.outDir),
    packageName: main.name,
    arch: plan.arch,
    // The recipe itself is not a source: its steps are judged one by one by the journal.
    sources: await sourcesDigest(plan, sourceDir, [...exclude, ...(options.workspaceDir ? [resolve(options.workspaceDir)] : []), recipeFile]),
  };
  const kept = options.resume ? await findResumable(options.resume, identity, options.workspaceDir, options.progress) : undefined;

  // package.timeout bounds the whole build, like Ctrl-C would: every stage is stopped and everything cleaned up.
  const { value, workspace } = await withSession(
    { label: main.name, timeout: sessionTimeout(plan.timeout, options.limits?.timeout !== undefined && options.limits.timeout > 0), signal: options.signal, progress: options.progress, keepWorkspace: options.keepWorkspace },
    async (session) => {
      const signal = session.signal;
      const freshWorkspace = () =>
        createWorkspace({ parent: options.workspaceDir, packageName: main.name, sourceDir, exclude, packages: plan.packages.map((p) => p.name) });
      const ws = await session.useWorkspace(() => (kept ? openWorkspace(kept.root) : freshWorkspace()));
      const observe = (log: (line: string) => void) =>
        observeBuild({ runner, policy: network, pkg: { name: main.name, version: main.version, epoch: main.epoch }, arch: plan.arch, archDir, debug: options.debug, log, signal });

      const sources =
        plan.sources.length > 0
          ? await session.stage('Fetch sources', (ctx) =>
              prepareSources(plan, { cacheDir: options.cacheDir, baseDir: dirname(recipeFile), log: (l) => ctx.output(l), signal }),
            )
          : (await session.skip('Fetch sources', 'no sources'), []);
      const root = await session.root('Prepare build root', options.environmentProvider, rootSpec(plan.environment, env, plan.arch), async (r) => {
        ws.log.write(`# build root: ${r.description}\n`);
      });
      const journal = newJournal({ ...identity, root: root.digest ?? root.description });
      const steps = planSteps(plan.packages.map((p) => ({ packageName: p.name, steps: p.steps })), {
        baseEnv: { ...options.env, ...plan.environment.env },
        sourceDateEpoch: options.sourceDateEpoch,
        debug: options.debug,
      });
      let skip = 0;
      if (kept) {
        const resumed = resumeSteps(kept, journal, steps);
        if (resumed.refusal !== undefined && options.resume !== 'auto') throw new ResumeError(`--resume: cannot resume ${kept.root}: ${resumed.refusal}`);
        const lines = resumed.refusal !== undefined ? [`--resume=auto: not resuming ${kept.root}: ${resumed.refusal}: building from scratch`] : resumed.lines;
        for (const line of lines) options.progress.note(line);
        session.workspace.log.write(lines.map((l) => `# ${l}\n`).join(''));
        if (resumed.refusal === undefined && resumed.skip > 0) skip = resumed.skip;
        else await session.useWorkspace(freshWorkspace);
      }

      const pod = podConfig({
        name: main.name,
        root,
        workspace: session.workspace,
        cacheDir: options.cacheDir,
        runAs: root.runAs ?? plan.environment.runAs,
        plan,
        cacheEntries: plan.sources.map((src) => src.cacheName),
        network: network.network,
        networkAllow: network.allow.map((rule) => ({ host: rule.host, port: rule.port })),
      });
      await session.sandbox(runner, pod);
      let observed = false;
      session.onFailure(async (failure, s) => {
        if (options.interactive) await openShell(s, runner, options.progress);
        // A failed build is recorded too (a blocked connection is often why it failed); best effort, so the
        // step's own failure stays the error.
        if (!observed && isObservableRunner(runner)) {
          try {
            const outcome = await observe((line) => s.workspace.log.write(`${line}\n`));
            failure.details.push(...outcome.summary);
          } catch (err) {
            failure.details.push(`observability: ${errorMessage(err)}`);
          }
        }
        // A VM's workspace lives in the VM: after a failed step it is brought back, so --resume can continue.
        if (s.failedStep) await retrieveWholeWorkspace(runner, s.workspace).catch((err: unknown) => failure.details.push(`workspace not brought back from the VM: ${errorMessage(err)}`));
      });
      const ran = await runSteps({
        session,
        runner,
        groups: plan.packages.map((p) => ({ title: `Pipeline: ${p.name}`, steps: steps.filter((s) => s.packageName === p.name) })),
        journal,
        skip,
      });

      let observability: ObservabilityOutcome | undefined;
      const built = await session.stage('Package', async (ctx) => {
        await retrieveWorkspace(runner, session.workspace);
        // Recorded events are read before the VM goes away; a broken network policy fails the build here,
        // after its report was written.
        observed = true;
        observability = await observe((line) => {
          session.workspace.log.write(`${line}\n`);
          ctx.output(line);
        });
        await runner.terminate();
        const packages = await writePackages({
          plan,
          treesDir: session.workspace.outDir,
          archDir,
          signingKey: key,
          sourceDateEpoch: options.sourceDateEpoch,
          namespace: options.namespace ?? 'unknown',
          stripOriginName: options.stripOriginName ?? false,
          ...(options.gitCommit ? { gitCommit: options.gitCommit } : {}),
          ...(options.recipe ? { recipe: options.recipe } : {}),
          sources,
          lint: {
            settingsFor: (pkg) =>
              lintSettings({ enabled: pkg.checks.enabled, disabled: pkg.checks.disabled, require: options.lintRequire, warn: options.lintWarn }),
            persist: options.persistLintResults ?? false,
          },
          log: (line) => ctx.output(line),
        });
        if (options.generateProvenance) {
          const recipe = { path: basename(plan.recipeFile), commit: options.gitCommit || main.commit || undefined, ...options.recipe };
          const input = { plan, recipe, sources, runner: runner.name, namespace: options.namespace ?? 'unknown', startedOn, finishedOn: new Date(), invocationId: newInvocationId() };
          for (const b of packages) ctx.output(await writeProvenance(b.path, input, options.sourceDateEpoch));
        }
        return packages;
      });
      const indexPath = options.generateIndex
        ? await session.stage('Update APKINDEX', async (ctx) => {
            const path = join(archDir, 'APKINDEX.tar.gz');
            await updateApkIndex({ path, add: built.map((b) => b.entry), signingKey: key });
            ctx.output(path);
            return path;
          })
        : undefined;
      return { packages: built, indexPath, observability, steps: ran };
    },
  );
  return { plan, ...value, ...(workspace ? { workspace } : {}) };
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

