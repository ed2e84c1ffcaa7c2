// One build, end to end: recipe → compiled plan → build root → runner → workspace → packages → index.
// Each stage is owned by its own module; this file only sequences them and guarantees cleanup.
import { access, constants, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadSigningKey } from '../apk/keys.ts';
import { updateApkIndex } from '../apk/index.ts';
import { loadRecipe } from '../config/load.ts';
import type { EnvironmentProvider, PreparedRoot } from '../environment/provider.ts';
import { BuilderError, StepFailedError } from '../errors.ts';
import { compileRecipe } from '../pipeline/compile.ts';
import type { BuildPlan, PackagePlan, StepPlan } from '../pipeline/plan.ts';
import type { PodConfig, Runner } from '../runners/runner.ts';
import { selectRunner } from '../runners/select.ts';
import { LineSplitter, Tail } from './lines.ts';
import type { ProgressRenderer, Task, TaskContext } from './progress.ts';
import { type BuiltPackage, writePackages } from './package.ts';
import { createWorkspace, type Workspace } from './workspace.ts';
import { lintSettings } from '../lint/settings.ts';

export type { BuiltPackage } from './package.ts';

export interface BuildOptions {
  recipeFile: string;
  arch: string;
  /** `bubblewrap`, `qemu` or `auto`. */
  runner: string;
  runners: Runner[];
  environmentProvider: EnvironmentProvider;
  outDir: string;
  signingKey?: string;
  /** Copied into the workspace; defaults to the recipe's folder. */
  sourceDir?: string;
  cacheDir: string;
  /** Parent of the per-build temp workspace (default: the system temp dir). */
  workspaceDir?: string;
  sourceDateEpoch: number;
  debug: boolean;
  generateIndex: boolean;
  keepWorkspace: boolean;
  /** Distribution namespace for SBOM purls (`pkg:apk/<namespace>/...`); default `unknown`. */
  namespace?: string;
  /** Linter names forced to errors / warnings (`--lint-require`, `--lint-warn`). */
  lintRequire?: string[];
  lintWarn?: string[];
  persistLintResults?: boolean;
  progress: ProgressRenderer;
  signal?: AbortSignal;
}

export interface BuildResult {
  plan: BuildPlan;
  packages: BuiltPackage[];
  indexPath?: string;
  /** Set when the workspace was kept. */
  workspace?: string;
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

const STEP_TAIL = 25;

export async function build(options: BuildOptions): Promise<BuildResult> {
  const recipeFile = resolve(options.recipeFile);
  const plan = compileRecipe(await loadRecipe(options.recipeFile), { arch: options.arch });
  const main = plan.packages[0]!;
  const archDir = resolve(options.outDir, plan.arch);
  // Everything that can be checked before running anything is checked first.
  await ensureWritableDir(archDir, '--out-dir');
  const key = options.signingKey ? await loadSigningKey(options.signingKey) : undefined;
  const runner = await selectRunner(options.runner, options.runners);
  await mkdir(options.cacheDir, { recursive: true });

  let workspace: Workspace | undefined;
  let root: PreparedRoot | undefined;
  let keep = options.keepWorkspace;
  let built: BuiltPackage[] = [];
  let indexPath: string | undefined;
  try {
    workspace = await createWorkspace({
      parent: options.workspaceDir,
      packageName: main.name,
      sourceDir: options.sourceDir ?? dirname(recipeFile),
      exclude: [resolve(options.outDir), resolve(options.cacheDir)],
      packages: plan.packages.map((p) => p.name),
    });
    const ws = workspace;
    const tasks: Task[] = [
      {
        title: 'Prepare build root',
        run: async (ctx) => {
          root = await options.environmentProvider.prepare(
            { repositories: plan.environment.repositories, keyring: plan.environment.keyring, packages: plan.environment.packages, arch: plan.arch },
            (line) => ctx.output(line),
          );
          ctx.output(root.description);
          ws.log.write(`# build root: ${root.description}\n`);
        },
      },
      {
        title: `Start ${runner.name} sandbox`,
        run: async () => runner.start(podConfig(plan, root!, ws, options)),
      },
      ...plan.packages.map((pkg): Task => ({
        title: `Pipeline: ${pkg.name}`,
        skip: pkg.steps.length === 0 ? 'no steps' : undefined,
        subtasks: pkg.steps.map((step, i) => ({
          title: `${i + 1}/${pkg.steps.length} ${step.name}`,
          run: (ctx) => runStep(runner, plan, pkg, step, ws, ctx, options),
        })),
      })),
      {
        title: 'Package',
        run: async (ctx) => {
          await runner.terminate();
          built = await writePackages({
            plan,
            treesDir: ws.outDir,
            archDir,
            signingKey: key,
            sourceDateEpoch: options.sourceDateEpoch,
            namespace: options.namespace ?? 'unknown',
            lint: {
              settingsFor: () => lintSettings({ require: options.lintRequire, warn: options.lintWarn }),
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
    throw new BuildFailedError(err, keep ? workspace?.root : undefined);
  } finally {
    await runner.terminate().catch(() => undefined);
    await root?.release().catch(() => undefined);
    if (workspace) {
      if (keep) await workspace.closeLog();
      else await workspace.remove();
    }
  }
  return { plan, packages: built, indexPath, workspace: keep ? workspace?.root : undefined };
}

function podConfig(plan: BuildPlan, root: PreparedRoot, ws: Workspace, options: BuildOptions): PodConfig {
  return {
    packageName: plan.packages[0]!.name,
    root,
    workspaceDir: ws.dir,
    cacheDir: resolve(options.cacheDir),
    mounts: [],
    network: false,
    runAs: plan.environment.runAs,
    arch: plan.arch,
    resources: plan.resources,
    capabilities: plan.capabilities,
  };
}

async function runStep(
  runner: Runner,
  plan: BuildPlan,
  pkg: PackagePlan,
  step: StepPlan,
  ws: Workspace,
  ctx: TaskContext,
  options: BuildOptions,
): Promise<void> {
  const tail = new Tail(STEP_TAIL);
  ws.log.write(`\n# ${pkg.name}: ${step.name} (${step.source}) in ${step.workdir}\n`);
  const splitter = new LineSplitter((line) => {
    tail.add(line);
    ctx.output(line);
  });
  const env = { ...plan.environment.env, ...step.env, SOURCE_DATE_EPOCH: String(options.sourceDateEpoch) };
  const flags = options.debug ? '-ex' : '-e';
  const code = await runner.run(['/bin/sh', flags, '-c', step.script], {
    env,
    workdir: step.workdir,
    signal: options.signal,
    onOutput: (_stream, chunk) => {
      ws.log.write(chunk);
      splitter.push(chunk);
    },
  });
  splitter.flush();
  if (code !== 0) {
    ws.log.write(`# exit code ${code}\n`);
    throw new StepFailedError(`step "${step.name}" of ${pkg.name} (${step.source}) failed with exit code ${code}`, code, tail.lines);
  }
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

