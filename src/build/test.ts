// `builder test`: each package's `test` pipeline runs in a fresh root made from its test environment, with the
// package under test installed from the out dir's repository (as built by `builder build`).
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type BaseProvides, parseApkInstalled } from '../environment/base-provides.ts';
import type { PreparedRoot } from '../environment/provider.ts';
import { BuilderError, errorMessage, UsageError } from '../errors.ts';
import { selectRunner } from '../runners/select.ts';
import { prepareSources } from '../sources/prepare.ts';
import type { SandboxRunOptions } from './build.ts';
import { runSteps } from './run-steps.ts';
import { BuildFailedError, sessionTimeout, withSession } from './session.ts';
import { openShell } from './shell.ts';
import { planSteps, podConfig, rootSpec } from './steps.ts';
import { compileRunPlan } from './run-plan.ts';
import { createWorkspace, defaultSourceDir } from './workspace.ts';

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
  const plan = await compileRunPlan(options);
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
    try {
      // package.timeout bounds each package's test like its build; a failed test keeps its workspace.
      await withSession(
        { label: pkg.name, activity: 'test', timeout: sessionTimeout(plan.timeout, options.limits?.timeout !== undefined && options.limits.timeout > 0), signal: options.signal, progress: options.progress, keepWorkspace: options.keepWorkspace },
        async (session) => {
          const workspace = await session.useWorkspace(async () =>
            createWorkspace({
              parent: options.workspaceDir,
              packageName: `${pkg.name}-test`,
              sourceDir: options.sourceDir ?? (await defaultSourceDir(recipeFile, plan.packages[0]!.name)),
              exclude: [resolve(options.outDir), resolve(options.cacheDir)],
              packages: [],
            }),
          );
          const title = `Fetch test sources for ${pkg.name}`;
          if (test.sources.length > 0) {
            await session.stage(title, (ctx) =>
              prepareSources({ recipeFile, sources: test.sources }, { cacheDir: options.cacheDir, log: (l) => ctx.output(l), signal: session.signal }),
            );
          } else await session.skip(title, 'no sources');
          const others = test.environment.packages.filter((p) => p !== pkg.name);
          // The out dir goes first: on equal versions the earlier repository wins.
          const spec = rootSpec(
            { ...test.environment, repositories: [resolve(options.outDir), ...test.environment.repositories], packages: [...others, `${pkg.name}=${version}`] },
            env,
            plan.arch,
          );
          const root = await session.root(`Prepare test root for ${pkg.name}`, options.environmentProvider, { ...spec, fromRepositories: [pkg.name], purpose: 'test' }, async (r, ctx) => {
            const line = await checkInstalled(r, pkg.name, version, resolve(options.outDir, plan.arch));
            ctx.output(line);
            workspace.log.write(`# test root: ${r.description}\n# ${line}\n`);
          });
          await session.sandbox(
            runner,
            podConfig({
              name: pkg.name,
              root,
              workspace,
              cacheDir: options.cacheDir,
              runAs: root.runAs ?? plan.environment.runAs,
              plan,
              cacheEntries: test.sources.map((src) => src.cacheName),
            }),
          );
          if (options.interactive) session.onFailure((_failure, s) => openShell(s, runner, options.progress));
          const steps = planSteps([{ packageName: pkg.name, steps: test.steps }], {
            baseEnv: { ...options.env, ...test.environment.env },
            sourceDateEpoch: options.sourceDateEpoch,
            debug: options.debug,
          });
          await runSteps({ session, runner, groups: [{ title: `Test ${pkg.name}`, steps }] });
        },
      );
      results.push({ name: pkg.name, passed: true });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      const workspace = err instanceof BuildFailedError ? err.workspace : undefined;
      results.push({ name: pkg.name, passed: false, error: errorMessage(err), details: err instanceof BuilderError ? err.details : [], ...(workspace ? { workspace } : {}) });
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
