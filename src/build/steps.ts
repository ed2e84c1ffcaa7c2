// Running compiled steps in a started sandbox: shared by `builder build` and `builder test`.
import { mkdir, rename, rm } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { resolve } from 'node:path';
import { extractTar } from '../archive/safe-extract.ts';
import { BuilderError, StepFailedError } from '../errors.ts';
import type { BuildPlan, StepPlan } from '../pipeline/plan.ts';
import type { AccountsSpec, EnvironmentSpec } from '../environment/provider.ts';
import type { BuildRoot, PodConfig, Runner, StepResources } from '../runners/runner.ts';
import type { EnvironmentAdditions } from '../seams.ts';
import { LineSplitter, Tail } from '../text/lines.ts';
import { type StepIdentity, stepIdentity } from './journal.ts';
import type { TaskContext } from './progress.ts';
import type { Workspace } from './workspace.ts';

/** The root a build or test asks for: what the recipe declares plus what the command line adds. */
export function rootSpec(
  declared: { repositories: string[]; keyring: string[]; packages: string[]; accounts?: AccountsSpec; origins?: Record<string, string[]> },
  additions: EnvironmentAdditions,
  arch: string,
): EnvironmentSpec {
  const appended = additions.packageAppend ?? [];
  const origins: Record<string, string[]> = { ...declared.origins };
  for (const name of appended) origins[name] = [...(origins[name] ?? []), '--package-append'];
  return {
    repositories: [...declared.repositories, ...(additions.repositoryAppend ?? [])],
    keyring: [...declared.keyring, ...(additions.keyringAppend ?? [])],
    packages: [...declared.packages, ...appended],
    arch,
    base: additions.base,
    ...(declared.accounts ? { accounts: declared.accounts } : {}),
    origins,
    ignoreSignatures: additions.ignoreSignatures ?? false,
    // Relative repositories, keys and dir:/oci: bases are relative to where builder runs, as in melange.
    baseDir: process.cwd(),
  };
}

/** Lines of a failed step's output repeated in the error. */
const STEP_TAIL = 25;

export function podConfig(o: {
  name: string;
  root: BuildRoot;
  workspace: Workspace;
  cacheDir: string;
  runAs: { uid: number; gid: number };
  plan: Pick<BuildPlan, 'arch' | 'resources' | 'capabilities'>;
  network?: boolean;
  networkAllow?: { host: string; port: number }[];
  cacheEntries?: string[];
  log?: (line: string) => void;
}): PodConfig {
  return {
    packageName: o.name,
    root: o.root,
    workspaceDir: o.workspace.dir,
    cacheDir: resolve(o.cacheDir),
    mounts: [],
    network: o.network ?? false,
    ...(o.networkAllow?.length ? { networkAllow: o.networkAllow } : {}),
    runAs: o.runAs,
    arch: o.plan.arch,
    resources: o.plan.resources,
    capabilities: o.plan.capabilities,
    ...(o.cacheEntries?.length ? { cacheEntries: o.cacheEntries } : {}),
    ...(o.log ? { log: o.log } : {}),
  };
}

export interface StepContext {
  /** The environment every step starts from; the step's own variables go over it. */
  baseEnv: Record<string, string>;
  sourceDateEpoch: number;
  debug: boolean;
}

/**
 * Picks the shell a step runs in, inside the sandbox: `/bin/sh` when it has `pipefail` (busybox ash, bash),
 * else `/bin/bash` (Debian's dash has no `pipefail`, and bash is Essential there), else `/bin/sh` anyway. The
 * probe runs in a subshell because dash exits on an unknown `set -o`. It is decided per step, so no state
 * follows the runner from one root to the next; the cost is one fork and one exec.
 */
const SHELL_SELECT = [
  'if (set -o pipefail) 2>/dev/null; then exec /bin/sh -c "$1"; fi',
  'if [ -x /bin/bash ]; then exec /bin/bash -c "$1"; fi',
  'exec /bin/sh -c "$1"',
].join('\n');

/**
 * The argv of one step, as melange runs it (pkg/build/pipeline.go): `set -e` (`-ex` with --debug), the
 * script, then `exit 0`, so a last command that is the false left side of `&&` does not fail the step. Like
 * melange, steps do not get `pipefail` by default; a step may `set -o pipefail` in any root (SHELL_SELECT).
 */
export function stepCommand(script: string, debug: boolean): string[] {
  return ['/bin/sh', '-c', SHELL_SELECT, 'builder-step', `set -e${debug ? 'x' : ''}\n${script}\nexit 0\n`];
}

/** One step as it will run: its argv, complete environment and what the journal identifies it by. */
export interface PlannedStep {
  packageName: string;
  /** `<n>/<count> <name>`, as the progress view shows it. */
  title: string;
  step: StepPlan;
  argv: string[];
  env: Record<string, string>;
  identity: StepIdentity;
}

/** The steps of the given pipelines, in the order they run (the main package's, then each subpackage's). */
export function planSteps(pipelines: { packageName: string; steps: StepPlan[] }[], c: StepContext): PlannedStep[] {
  return pipelines.flatMap((p) =>
    p.steps.map((step, i) => {
      const title = `${i + 1}/${p.steps.length} ${step.name}`;
      const argv = stepCommand(step.script, c.debug);
      const env = { ...c.baseEnv, ...step.env, SOURCE_DATE_EPOCH: String(c.sourceDateEpoch) };
      return { packageName: p.packageName, title, step, argv, env, identity: stepIdentity(`${p.packageName}: ${title}`, argv, env, step.workdir) };
    }),
  );
}

/** Runs one planned step; its output goes to the log and the progress view; non-zero exit throws. */
/** One step that ran, with what it cost when the runner measured it. */
export interface StepRecord {
  packageName: string;
  step: string;
  resources?: StepResources;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** `wall 1.02 s, CPU 0.01 s (user 0.00 s, system 0.01 s), peak RSS 5.8 MiB`. */
export function formatResources(r: StepResources): string {
  return `wall ${seconds(r.wallMs)}, CPU ${seconds(r.userMs + r.systemMs)} (user ${seconds(r.userMs)}, system ${seconds(r.systemMs)}), peak RSS ${(r.maxRssKiB / 1024).toFixed(1)} MiB`;
}

/** The end-of-build summary: one line per measured step. */
export function stepResourceLines(steps: readonly StepRecord[]): string[] {
  return steps.flatMap((s) => (s.resources ? [`step ${s.packageName}: ${s.step}: ${formatResources(s.resources)}`] : []));
}

export async function runStep(runner: Runner, planned: PlannedStep, ws: Workspace, ctx: TaskContext, signal: AbortSignal | undefined): Promise<StepRecord> {
  const { step, packageName } = planned;
  const tail = new Tail(STEP_TAIL);
  ws.log.write(`\n# ${packageName}: ${step.name} (${step.source}) in ${step.workdir}\n`);
  const splitter = new LineSplitter((line) => {
    tail.add(line);
    ctx.output(line);
  });
  const record: StepRecord = { packageName, step: step.name };
  const code = await runner.run(planned.argv, {
    env: planned.env,
    workdir: step.workdir,
    signal,
    onResources: (r) => {
      record.resources = r;
      ws.log.write(`# resources: ${formatResources(r)}\n`);
    },
    onOutput: (_stream, chunk) => {
      ws.log.write(chunk);
      splitter.push(chunk);
    },
  });
  splitter.flush();
  if (code !== 0) {
    ws.log.write(`# exit code ${code}\n`);
    throw new StepFailedError(`step "${step.name}" of ${packageName} (${step.source}) failed with exit code ${code}`, code, tail.lines);
  }
  return record;
}

/** VM runners hand the package trees back as a tar stream; bind-mount runners return null (nothing to do). */
export async function retrieveWorkspace(runner: Runner, ws: Workspace): Promise<boolean> {
  const tar = await runner.workspaceTar();
  if (!tar) return false;
  await rm(ws.outDir, { recursive: true, force: true });
  await mkdir(ws.outDir, { recursive: true });
  await extractTar(tar, { dest: ws.outDir, where: `workspace from the ${runner.name} runner` });
  return true;
}

/**
 * After a failure in a sandbox whose workspace is not the host's (a VM), all of /home/build comes back (as a
 * tar made inside the sandbox, by the steps' own user), so that `--resume` continues from it. It is unpacked
 * beside the workspace and swapped in only when complete.
 */
export async function retrieveWholeWorkspace(runner: Runner, ws: Workspace, signal?: AbortSignal): Promise<void> {
  if (!(await retrieveWorkspace(runner, ws))) return;
  const incoming = `${ws.dir}.incoming`;
  await rm(incoming, { recursive: true, force: true });
  await mkdir(incoming);
  const stream = new PassThrough();
  const extracting = extractTar(stream, { dest: incoming, where: `workspace from the ${runner.name} runner` });
  extracting.catch(() => undefined);
  const stderr: string[] = [];
  const code = await runner
    .run(['tar', '-c', '-f', '-', '-C', '/home/build', '.'], {
      env: { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' },
      workdir: '/home/build',
      signal,
      onOutput: (s, chunk) => (s === 'stdout' ? stream.write(chunk) : stderr.push(chunk.toString('utf8'))),
    })
    .finally(() => stream.end());
  await extracting;
  if (code !== 0) {
    await rm(incoming, { recursive: true, force: true });
    throw new BuilderError(`tar in the sandbox exited ${code}: ${stderr.join('').trim()}`);
  }
  await rm(`${ws.dir}.old`, { recursive: true, force: true });
  await rename(ws.dir, `${ws.dir}.old`);
  await rename(incoming, ws.dir);
  await rm(`${ws.dir}.old`, { recursive: true, force: true });
}
