// Shared fixtures for the runner tests: a temp workspace and cache, the host root, a PodConfig around them.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { HostProvider } from '../../src/environment/host.ts';
import type { BuildRoot, OutputStream, PodConfig, RunOptions } from '../../src/runners/runner.ts';

export interface Sandbox {
  dir: string;
  workspaceDir: string;
  cacheDir: string;
  remove(): Promise<void>;
}

export async function makeSandboxDirs(): Promise<Sandbox> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'builder-bwrap-test-'));
  const workspaceDir = path.join(dir, 'workspace');
  const cacheDir = path.join(dir, 'cache');
  await mkdir(workspaceDir);
  await mkdir(cacheDir);
  return { dir, workspaceDir, cacheDir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export async function hostRoot(): Promise<BuildRoot> {
  return new HostProvider().prepare({ repositories: [], keyring: [], packages: [], arch: '' }, () => undefined);
}

export function podConfig(sandbox: Pick<Sandbox, 'workspaceDir' | 'cacheDir'>, root: BuildRoot, overrides: Partial<PodConfig> = {}): PodConfig {
  return {
    packageName: 'test-pkg',
    root,
    workspaceDir: sandbox.workspaceDir,
    cacheDir: sandbox.cacheDir,
    mounts: [],
    network: false,
    runAs: { uid: 1000, gid: 1000 },
    arch: 'x86_64',
    resources: {},
    capabilities: { add: [], drop: [] },
    ...overrides,
  };
}

/** Collects a command's output per stream, plus the order in which chunks arrived. */
export class Output {
  readonly chunks: { stream: OutputStream; data: Buffer }[] = [];
  readonly onOutput = (stream: OutputStream, data: Buffer): void => {
    this.chunks.push({ stream, data });
  };
  text(stream: OutputStream): string {
    return Buffer.concat(this.chunks.filter((c) => c.stream === stream).map((c) => c.data)).toString('utf8');
  }
}

export const BASE_ENV = { HOME: '/home/build', PATH: '/usr/bin:/bin:/usr/sbin:/sbin' };

export function runOptions(output: Output, extra: Partial<RunOptions> = {}): RunOptions {
  return { env: BASE_ENV, workdir: '/home/build', onOutput: output.onOutput, ...extra };
}
