// Observability through the whole build (the integrator's build() with the QEMU runner, TCG) and the CLI: a
// recipe whose steps run programs and connect to a server on the host's loopback; the report lands next to the
// packages, a matching --network-allow passes, a non-matching one fails the build naming the connection (and no
// package is written), and the default policy blocks the connection but still reports it.
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, BuildFailedError, type BuildOptions } from '../../src/build/build.ts';
import { PlainRenderer } from '../../src/build/progress.ts';
import type { EnvironmentProvider } from '../../src/environment/provider.ts';
import { networkPolicyFromFlags } from '../../src/observe/policy.ts';
import type { ObservabilityReport } from '../../src/observe/report.ts';
import { QemuRunner } from '../../src/runners/qemu/runner.ts';
import { builder, hasStackTrace } from '../helpers/cli.ts';
import { kernelEnv, makeTempDir, SHARED_CACHE, testKernel, tinyRoot } from '../runners/qemu/helpers.ts';

let dir: string;
let root: string;
let recipe: string;
let server: net.Server;
let port: number;

function dirProvider(rootDir: string): EnvironmentProvider {
  return {
    name: 'dir',
    prepare: async () => ({ description: `dir:${rootDir}`, mounts: [{ source: rootDir, target: '/', readonly: true }], directory: rootDir, release: async () => undefined }),
  };
}

beforeAll(async () => {
  dir = await makeTempDir('builder-observe-build-');
  root = await tinyRoot(dir);
  server = net.createServer((socket) => socket.end('hello from the host\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
  const recipeDir = path.join(dir, 'recipe');
  await mkdir(recipeDir);
  recipe = path.join(recipeDir, 'fetcher.yaml');
  await writeFile(
    recipe,
    [
      'package:',
      '  name: fetcher',
      '  version: 2.0.1',
      '  epoch: 3',
      '  description: talks to the network while it builds',
      '  copyright:',
      '    - license: MIT',
      'pipeline:',
      '  - name: Fetch',
      '    runs: |',
      '      /bin/busybox nc -w 5 10.0.2.2 ${{vars.port}} </dev/null >reply || echo "no network"',
      '      /bin/cat reply',
      '  - name: Install',
      '    runs: |',
      '      /bin/mkdir -p ${{targets.destdir}}/usr/share/fetcher',
      '      /bin/cat reply >${{targets.destdir}}/usr/share/fetcher/reply',
      'vars:',
      `  port: "${port}"`,
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function buildWith(name: string, flags: { network?: boolean; networkAllow?: string[] }, log: string[]) {
  const progressOut = new PassThrough();
  progressOut.on('data', (c: Buffer) => log.push(...c.toString().split('\n').filter((l) => l !== '')));
  const runner = new QemuRunner({ artifactDir: SHARED_CACHE, env: kernelEnv(await testKernel()), bootTimeoutMs: 120_000 });
  const options: BuildOptions = {
    recipeFile: recipe,
    arch: 'x86_64',
    runner: 'qemu',
    runners: [runner],
    environmentProvider: dirProvider(root),
    outDir: path.join(dir, `out-${name}`),
    cacheDir: path.join(dir, 'cache'),
    workspaceDir: path.join(dir, 'workspaces'),
    sourceDateEpoch: 1_700_000_000,
    debug: false,
    generateIndex: false,
    keepWorkspace: false,
    network: networkPolicyFromFlags(flags),
    progress: new PlainRenderer(progressOut),
  };
  return { outDir: path.join(dir, `out-${name}`, 'x86_64'), result: build(options) };
}

async function report(outDir: string): Promise<ObservabilityReport> {
  return JSON.parse(await readFile(path.join(outDir, 'fetcher-2.0.1-r3.observability.json'), 'utf8')) as ObservabilityReport;
}

describe('a build that connects to the network', () => {
  it('with a matching --network-allow: builds, and the report next to the package has the connection', async () => {
    const log: string[] = [];
    const { outDir, result } = await buildWith('allowed', { networkAllow: [`10.0.2.2:${port}`] }, log);
    const built = await result;
    expect(built.packages.map((p) => path.basename(p.path))).toEqual(['fetcher-2.0.1-r3.apk']);
    expect((await readdir(outDir)).sort()).toEqual(['fetcher-2.0.1-r3.apk', 'fetcher-2.0.1-r3.observability.json']);
    const r = await report(outDir);
    expect(r.package).toEqual({ name: 'fetcher', version: '2.0.1', epoch: 3 });
    expect(r.recording.complete).toBe(true);
    expect(r.events).toContainEqual(expect.objectContaining({ type: 'net', function: 'tcp_connect', dst_addr: '10.0.2.2', dst_port: port, outcome: 'established', scope: 'build' }));
    expect(r.summary.programs.map((p) => p.program)).toEqual(expect.arrayContaining(['/bin/busybox', '/bin/cat', '/bin/mkdir']));
    expect(log).toContainEqual(expect.stringMatching(new RegExp(`\\[OBSERVABILITY\\] tcp_connect busybox .* -> 10\\.0\\.2\\.2:${port}/tcp established \\[allowed: 10\\.0\\.2\\.2:${port}\\]`)));
    expect(built.observability?.summary).toContainEqual(`observability: 10.0.2.2:${port}/tcp ×1 (1 established) by busybox: allowed (10.0.2.2:${port})`);
  });

  it('with a --network-allow that does not list it: fails naming the process and destination, writes no package', async () => {
    const { outDir, result } = await buildWith('denied', { networkAllow: ['10.0.2.2:1'] }, []);
    const err = await result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildFailedError);
    expect((err as Error).message).toMatch(new RegExp(`^network policy violated: busybox \\(pid \\d+, /bin/busybox\\) connected to 10\\.0\\.2\\.2:${port}/tcp, which --network-allow does not list$`));
    expect(await readdir(outDir)).toEqual(['fetcher-2.0.1-r3.observability.json']);
    if ((err as BuildFailedError).workspace) await rm((err as BuildFailedError).workspace!, { recursive: true, force: true });
  });

  it('with the default policy: the connection fails and is still reported', async () => {
    const log: string[] = [];
    const { outDir, result } = await buildWith('default', {}, log);
    await result;
    expect(log.some((l) => l.endsWith('no network'))).toBe(true);
    const r = await report(outDir);
    expect(r.policy).toMatchObject({ network: false, violations: [] });
    expect(r.summary.destinations).toContainEqual(expect.objectContaining({ destination: `10.0.2.2:${port}`, verdict: 'blocked', failed: 1 }));
  });
});

describe('the command line', () => {
  it('refuses malformed --network-allow values as usage errors', async () => {
    for (const value of ['example.org', 'example.org:99999', '::1:443']) {
      const r = await builder(['build', '--runner', 'qemu', '--network-allow', value, recipe]);
      expect(r.exitCode, value).toBe(2);
      expect(r.stderr).toContain(`--network-allow ${JSON.stringify(value)}`);
      expect(hasStackTrace(r.all)).toBe(false);
    }
  });

  it('says in build --help that observability is a QEMU-runner feature', async () => {
    const r = await builder(['build', '--help']);
    expect(r.stdout).toContain('--network-allow');
    expect(r.stdout).toContain('QEMU-runner feature: the Bubblewrap runner records nothing');
  });
});
