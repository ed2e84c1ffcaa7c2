// `builder test`: each package's `test` pipeline runs in a fresh root made from its test environment, with the
// package under test installed from the out dir's repository (as built by `builder build`).
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadRecipe } from '../config/load.ts';
import { type BaseProvides, parseApkInstalled } from '../environment/base-provides.ts';
import type { PreparedRoot } from '../environment/provider.ts';
import { BuilderError, errorMessage, UsageError } from '../errors.ts';
import { compileRecipe } from '../pipeline/compile.ts';
import { selectRunner } from '../runners/select.ts';
import { prepareSources } from '../sources/prepare.ts';
import type { SandboxRunOptions } from './build.ts';
import type { Task } from './progress.ts';
import { podConfig, rootSpec, runStep } from './steps.ts';
import { createWorkspace, defaultSourceDir, type Workspace } from './workspace.ts';

export interface TestOptions extends SandboxRunOptions {
  /** `name` or `name=version` (`1.2-r0`) of packages to test; empty: every package with a test. */
  targets: string[];
}

export interface PackageTestResult {
  name: string;
  passed: boolean;
  /** The failure, when it failed. */
  error?: string;
  details?: string[];
  /** Kept workspace of a failed test. */
  workspace?: string;
}

export class TestsFailedError extends BuilderError {
  override name = 'TestsFailedError';
}

export async function testRecipe(options: TestOptions): Promise<PackageTestResult[]> {
  const recipeFile = resolve(options.recipeFile);
  const plan = compileRecipe(await loadRecipe(options.recipeFile), {
    arch: options.arch,
    pipelineDirs: options.pipelineDirs,
    buildOptions: options.buildOptions,
  });
  const pins = parseTargets(options.targets);
  for (const name of pins.keys()) {
    if (!plan.packages.some((p) => p.name === name)) throw new UsageError(`package "${name}" is not built by ${options.recipeFile}`);
  }
  const selected = plan.packages.filter((p) => p.test && (pins.size === 0 || pins.has(p.name)));
  if (selected.length === 0) {
    options.progress.note(`${options.recipeFile}: no package to test has a test section`);
    return [];
  }
  const runner = await selectRunner(options.runner, options.runners);
  const env = options.environment ?? {};
  const results: PackageTestResult[] = [];

  for (const pkg of selected) {
    const test = pkg.test!;
    // The package under test is always the one in the out dir, at the recipe's full version (melange #2194),
    // even when the base has a package of that name.
    const version = pins.get(pkg.name) ?? `${pkg.version}-r${pkg.epoch}`;
    let ws: Workspace | undefined;
    let root: PreparedRoot | undefined;
    // A failed test keeps its workspace (like a failed build); an interrupted one does not.
    let keep = options.keepWorkspace;
    try {
      ws = await createWorkspace({
        parent: options.workspaceDir,
        packageName: `${pkg.name}-test`,
        sourceDir: options.sourceDir ?? (await defaultSourceDir(recipeFile, plan.packages[0]!.name)),
        exclude: [resolve(options.outDir), resolve(options.cacheDir)],
        packages: [],
      });
      const workspace = ws;
      const tasks: Task[] = [
        {
          title: `Fetch test sources for ${pkg.name}`,
          skip: test.sources.length > 0 ? undefined : 'no sources',
          run: async (ctx) => {
            await prepareSources({ recipeFile, sources: test.sources }, { cacheDir: options.cacheDir, log: (l) => ctx.output(l), signal: options.signal });
          },
        },
        {
          title: `Prepare test root for ${pkg.name}`,
          run: async (ctx) => {
            const others = test.environment.packages.filter((p) => p !== pkg.name);
            // The out dir goes first: on equal versions the earlier repository wins.
            const spec = rootSpec(
              { ...test.environment, repositories: [resolve(options.outDir), ...test.environment.repositories], packages: [...others, `${pkg.name}=${version}`] },
              env,
              plan.arch,
            );
            root = await options.environmentProvider.prepare({ ...spec, fromRepositories: [pkg.name] }, (line) => ctx.output(line));
            ctx.output(root.description);
            const line = await checkInstalled(root, pkg.name, version, resolve(options.outDir, plan.arch));
            ctx.output(line);
            workspace.log.write(`# test root: ${root.description}\n# ${line}\n`);
          },
        },
        {
          title: `Start ${runner.name} sandbox`,
          run: (ctx) =>
            runner.start(
              podConfig({
                name: pkg.name,
                root: root!,
                workspace,
                cacheDir: options.cacheDir,
                runAs: root!.runAs ?? plan.environment.runAs,
                plan,
                cacheEntries: test.sources.map((src) => src.cacheName),
                log: (line) => ctx.output(line),
              }),
            ),
        },
        {
          title: `Test ${pkg.name}`,
          skip: test.steps.length > 0 ? undefined : 'no steps',
          subtasks: test.steps.map((step, i) => ({
            title: `${i + 1}/${test.steps.length} ${step.name}`,
            run: async (ctx) => {
              await runStep(runner, step, workspace, ctx, {
                packageName: pkg.name,
                baseEnv: { ...options.env, ...test.environment.env },
                sourceDateEpoch: options.sourceDateEpoch,
                debug: options.debug,
                signal: options.signal,
              });
            },
          })),
        },
      ];
      await options.progress.run(tasks);
      results.push({ name: pkg.name, passed: true });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      keep = true;
      results.push({ name: pkg.name, passed: false, error: errorMessage(err), details: err instanceof BuilderError ? err.details : [], workspace: ws?.root });
    } finally {
      await runner.terminate().catch(() => undefined);
      await root?.release().catch(() => undefined);
      if (keep) await ws?.closeLog();
      else await ws?.remove();
    }
  }
  return results;
}

/** Reports each package's result; throws TestsFailedError when any failed. */
export function reportTestResults(results: PackageTestResult[], note: (line: string) => void): void {
  for (const r of results) note(`${r.passed ? 'PASS' : 'FAIL'} ${r.name}${r.error ? `: ${r.error}` : ''}`);
  const failed = results.filter((r) => !r.passed);
  if (failed.length > 0) {
    throw new TestsFailedError(`${failed.length} of ${results.length} package test(s) failed: ${failed.map((f) => f.name).join(', ')}`, {
      details: failed.flatMap((f) => [
        `${f.name}: ${f.error ?? ''}`,
        ...(f.details ?? []).map((d) => `  ${d}`),
        ...(f.workspace ? [`  workspace kept at ${f.workspace} (full log: ${f.workspace}/build.log)`] : []),
      ]),
    });
  }
}

/** The package under test must be in the test root at the version asked for; says where it came from. */
async function checkInstalled(root: PreparedRoot, name: string, version: string, repository: string): Promise<string> {
  if (root.directory === undefined) {
    throw new BuilderError(`${name}: the test root (${root.description}) cannot have packages installed; builder test needs a base other than host`);
  }
  const installed: BaseProvides = new Map();
  const db = await readFile(join(root.directory, 'lib/apk/db/installed'), 'utf8').catch(() => '');
  parseApkInstalled(db, installed);
  const have = installed.get(name);
  if (have !== version) {
    throw new BuilderError(`${name}: the test root has ${have === undefined ? 'no apk package of that name' : `${name}-${have}`}, not ${name}-${version} from ${repository}`);
  }
  return `testing ${name}-${version} from ${repository}`;
}

function parseTargets(targets: string[]): Map<string, string | undefined> {
  const pins = new Map<string, string | undefined>();
  for (const t of targets) {
    const [name, version] = t.split('=', 2);
    if (!name) throw new UsageError(`invalid package "${t}": expected NAME or NAME=VERSION`);
    pins.set(name, version || undefined);
  }
  return pins;
}
