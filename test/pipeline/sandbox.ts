// Runs a compiled plan for real, the way `builder build` does up to packaging: host-side sources into the
// cache, a workspace with the source dir copied in, the host build root, every step in Bubblewrap.
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { createWorkspace, type Workspace } from '../../src/build/workspace.ts';
import { HostProvider } from '../../src/environment/host.ts';
import type { BuildPlan } from '../../src/pipeline/plan.ts';
import { DEFAULT_PATH } from '../../src/pipeline/plan.ts';
import { BubblewrapRunner } from '../../src/runners/bubblewrap.ts';
import type { Mount } from '../../src/runners/runner.ts';
import { prepareSources } from '../../src/sources/prepare.ts';

export interface RunResult {
  workspace: Workspace;
  /** Host path of /home/build/melange-out/<name>. */
  out: (name: string) => string;
  /** Everything the steps printed. */
  log: string;
  /** Exit code of the first failing step, or 0. */
  exitCode: number;
}

/** Where `tool` is on the sandbox's PATH (the host root binds /usr, /bin, /sbin), if it is. */
export async function findTool(tool: string): Promise<string | undefined> {
  for (const dir of DEFAULT_PATH.split(':')) {
    try {
      await access(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // next
    }
  }
  return undefined;
}

export async function hasTool(tool: string): Promise<boolean> {
  return (await findTool(tool)) !== undefined;
}

/** Whether the sandbox's `tool` runs `args` successfully (e.g. a Python or Perl module is installed). */
export async function toolRuns(tool: string, args: string[]): Promise<boolean> {
  const path = await findTool(tool);
  if (path === undefined) return false;
  return (await execa(path, args, { reject: false, stdin: 'ignore' })).exitCode === 0;
}

export async function runPlan(
  plan: BuildPlan,
  options: { sourceDir: string; cacheDir: string; parent: string; mounts?: Mount[] },
): Promise<RunResult> {
  await prepareSources(plan, { cacheDir: options.cacheDir });
  const workspace = await createWorkspace({
    parent: options.parent,
    packageName: plan.packages[0]!.name,
    sourceDir: options.sourceDir,
    exclude: [options.cacheDir],
    packages: plan.packages.map((p) => p.name),
  });
  const root = await new HostProvider().prepare({ repositories: [], keyring: [], packages: [], arch: plan.arch }, () => undefined);
  const runner = new BubblewrapRunner();
  let log = '';
  let exitCode = 0;
  try {
    await runner.start({
      packageName: plan.packages[0]!.name,
      root,
      workspaceDir: workspace.dir,
      cacheDir: options.cacheDir,
      mounts: options.mounts ?? [],
      network: false,
      runAs: plan.environment.runAs,
      arch: plan.arch,
      resources: {},
      capabilities: { add: [], drop: [] },
    });
    outer: for (const pkg of plan.packages) {
      for (const step of pkg.steps) {
        log += `### ${pkg.name}: ${step.name}\n`;
        exitCode = await runner.run(['/bin/sh', '-e', '-c', step.script], {
          env: { ...plan.environment.env, ...step.env, SOURCE_DATE_EPOCH: '1700000000' },
          workdir: step.workdir,
          onOutput: (_stream, chunk) => {
            log += chunk.toString('utf8');
          },
        });
        if (exitCode !== 0) break outer;
      }
    }
  } finally {
    await runner.terminate();
    await root.release();
  }
  return { workspace, out: (name) => join(workspace.outDir, name), log, exitCode };
}
