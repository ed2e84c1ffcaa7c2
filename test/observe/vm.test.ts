// Observability end to end in real VMs under TCG (Debian's cloud kernel, a tiny busybox root): the hook in the
// default base initramfs records what steps execute and a TCP connection to a server on the host's loopback
// (the guest reaches it as the user-mode gateway 10.0.2.2); the build stage judges it against the policy.
import { mkdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectGuestObservability } from '../../src/observe/collect.ts';
import { ObservabilityError, type NetworkConnection, type ObservedEvent, type ProcessExecution } from '../../src/observe/events.ts';
import { LOG_PREFIX } from '../../src/observe/format.ts';
import { NetworkPolicyError, networkPolicyFromFlags } from '../../src/observe/policy.ts';
import type { ObservabilityReport } from '../../src/observe/report.ts';
import { observeBuild } from '../../src/observe/stage.ts';
import { QemuRunner } from '../../src/runners/qemu/runner.ts';
import type { PodConfig } from '../../src/runners/runner.ts';
import { kernelEnv, leftovers, makeTempDir, podFor, qemuProcessesMentioning, SHARED_CACHE, testKernel, tinyRoot } from '../runners/qemu/helpers.ts';
import { initramfsWithoutHook } from './helpers.ts';

const PKG = { name: 'observed', version: '1.0', epoch: 0 };

let dir: string;
let root: string;
let server: net.Server;
let port: number;
const accepted: string[] = [];

beforeAll(async () => {
  dir = await makeTempDir('builder-observe-vm-');
  root = await tinyRoot(dir);
  server = net.createServer((socket) => {
    accepted.push(socket.remoteAddress ?? '?');
    socket.end('hello from the host\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A VM for one describe block: booted before its tests, torn down (and checked for leftovers) after. */
function useVm(name: string, pod: (workspace: string) => PodConfig, extra: { initramfs?: () => Promise<string> } = {}) {
  const vm: { runner?: QemuRunner; archDir: string; logs: string[] } = { archDir: '', logs: [] };
  let tempParent: string;
  beforeAll(async () => {
    const base = path.join(dir, name);
    tempParent = path.join(base, 'tmp');
    vm.archDir = path.join(base, 'out', 'x86_64');
    const workspace = path.join(base, 'workspace');
    await Promise.all([mkdir(tempParent, { recursive: true }), mkdir(vm.archDir, { recursive: true }), mkdir(path.join(workspace, 'melange-out'), { recursive: true })]);
    vm.runner = new QemuRunner({
      artifactDir: SHARED_CACHE,
      env: kernelEnv(await testKernel()),
      bootTimeoutMs: 120_000,
      tempDir: tempParent,
      initramfs: extra.initramfs ? await extra.initramfs() : undefined,
      log: (l) => vm.logs.push(l),
    });
    await vm.runner.start(pod(workspace));
  });
  afterAll(async () => {
    await vm.runner?.terminate();
    if (tempParent) {
      expect(await qemuProcessesMentioning(tempParent)).toEqual([]);
      expect(await leftovers(tempParent)).toEqual([]);
    }
  });
  return vm;
}

async function step(runner: QemuRunner, script: string): Promise<{ code: number; output: string }> {
  let output = '';
  const code = await runner.run(['/bin/sh', '-c', script], {
    env: { PATH: '/usr/bin:/bin', HOME: '/home/build' },
    workdir: '/home/build',
    onOutput: (_s, chunk) => {
      output += chunk.toString('utf8');
    },
  });
  return { code, output };
}

/**
 * Several programs, then a TCP connection to the host's server. Full paths, because busybox's shell runs its
 * own applets without an exec when it can; the step fails when the connection does.
 */
function connectingStep(): string {
  return `echo payload >/tmp/data; /bin/sha256sum /tmp/data | /bin/head -c 16; echo; /bin/ls /home/build | /bin/wc -l; /bin/busybox nc -w 5 10.0.2.2 ${port} </dev/null && echo connected`;
}

const execsOf = (events: ObservedEvent[]): ProcessExecution[] => events.filter((e): e is ProcessExecution => e.type === 'exec');
const connectsOf = (events: ObservedEvent[]): NetworkConnection[] => events.filter((e): e is NetworkConnection => e.type === 'net' && e.function === 'tcp_connect');

async function readReport(file: string): Promise<ObservabilityReport> {
  return JSON.parse(await readFile(file, 'utf8')) as ObservabilityReport;
}

describe('a build with the network allowed', () => {
  const vm = useVm('network', (workspace) => podFor(root, workspace, { network: true }));

  it('runs a step that talks to the host', async () => {
    const before = accepted.length;
    const { code, output } = await step(vm.runner!, connectingStep());
    expect(code).toBe(0);
    expect(output).toContain('hello from the host\nconnected');
    expect(accepted.length).toBe(before + 1);
  });

  it('reports the executions and a tcp_connect to the server, and passes a matching --network-allow', async () => {
    const log: string[] = [];
    const outcome = await observeBuild({
      runner: vm.runner!,
      policy: networkPolicyFromFlags({ networkAllow: [`10.0.2.2:${port}`] }),
      pkg: PKG,
      arch: 'x86_64',
      archDir: vm.archDir,
      debug: false,
      log: (l) => log.push(l),
    });
    expect(outcome.reportPath).toBe(path.join(vm.archDir, 'observed-1.0-r0.observability.json'));
    const report = await readReport(outcome.reportPath!);
    expect(report.recording).toMatchObject({ complete: true, missing: [], hook: { state: 'stopped', converter: 'stopped', tampered: false } });

    const execs = execsOf(report.events).filter((e) => e.scope === 'build');
    const step = execs.find((e) => e.filename === '/bin/sh' && e.argv?.[2] === connectingStep());
    expect(step).toMatchObject({ uid: 1000, argv_complete: true });
    const children = execs.filter((e) => e.ppid === step!.pid).map((e) => e.filename);
    expect(children).toEqual(expect.arrayContaining(['/bin/sha256sum', '/bin/head', '/bin/ls', '/bin/wc', '/bin/busybox']));
    const nc = execs.find((e) => e.argv?.join(' ') === `/bin/busybox nc -w 5 10.0.2.2 ${port}`);
    expect(nc).toBeDefined();

    const connect = connectsOf(report.events).filter((c) => c.dst_port === port);
    expect(connect).toEqual([
      expect.objectContaining({ pid: nc!.pid, protocol: 'tcp', family: 'ipv4', src_addr: '10.0.2.15', dst_addr: '10.0.2.2', dst_port: port, outcome: 'established', uid: 1000, scope: 'build' }),
    ]);
    expect(connect[0]!.src_port).toBeGreaterThan(0);
    expect(Date.parse(connect[0]!.timestamp)).toBeGreaterThan(Date.parse(report.recording.bootTime));
    expect(report.events.some((e) => e.type === 'net' && e.function === 'tcp_close' && e.dst_port === port && e.established === true)).toBe(true);
    expect(report.summary.destinations).toContainEqual(expect.objectContaining({ destination: `10.0.2.2:${port}`, verdict: 'allowed', established: 1 }));
    expect(report.summary.programs.map((p) => p.program)).toEqual(expect.arrayContaining(['/bin/sh', '/bin/sha256sum', '/bin/busybox']));
    expect(log).toContainEqual(expect.stringMatching(new RegExp(`^\\[OBSERVABILITY\\] tcp_connect busybox \\(pid ${nc!.pid}, uid 1000\\) 10\\.0\\.2\\.15:\\d+ -> 10\\.0\\.2\\.2:${port}/tcp established \\[allowed: 10\\.0\\.2\\.2:${port}\\]$`)));
    expect(outcome.summary).toContainEqual(`observability: 10.0.2.2:${port}/tcp ×1 (1 established) by busybox: allowed (10.0.2.2:${port})`);
  });

  it('fails a --network-allow that does not list the server, naming the process and the destination', async () => {
    const err = await observeBuild({
      runner: vm.runner!,
      policy: networkPolicyFromFlags({ networkAllow: ['10.0.2.2:1', 'example.invalid:443'] }),
      pkg: PKG,
      arch: 'x86_64',
      archDir: vm.archDir,
      debug: false,
      log: () => undefined,
      resolve: async () => [],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkPolicyError);
    expect((err as Error).message).toMatch(new RegExp(`^network policy violated: busybox \\(pid \\d+, /bin/busybox\\) connected to 10\\.0\\.2\\.2:${port}/tcp, which --network-allow does not list$`));
    const report = await readReport(path.join(vm.archDir, 'observed-1.0-r0.observability.json'));
    expect(report.policy.violations).toHaveLength(1);
    expect(report.policy.unresolved).toEqual(['example.invalid']);
  });

  it('says so when the hook is there but its events file is not', async () => {
    await vm.runner!.control(['rm', '-f', '/var/log/observability/events.json']);
    await expect(collectGuestObservability(vm.runner!)).rejects.toThrow(ObservabilityError);
    await expect(vm.runner!.collectObservability()).rejects.toThrow(
      'the VM\'s initramfs has the observability hook (/etc/builder/observability) but no events file /var/log/observability/events.json',
    );
  });
});

describe('a build with the default policy (no network)', () => {
  const vm = useVm('no-network', (workspace) => podFor(root, workspace));

  it('cannot connect, and the attempt is still reported', async () => {
    const before = accepted.length;
    const { code } = await step(vm.runner!, connectingStep());
    expect(code).not.toBe(0);
    expect(accepted.length).toBe(before);

    const log: string[] = [];
    const outcome = await observeBuild({ runner: vm.runner!, policy: networkPolicyFromFlags({}), pkg: PKG, arch: 'x86_64', archDir: vm.archDir, debug: true, log: (l) => log.push(l) });
    const report = await readReport(outcome.reportPath!);
    expect(connectsOf(report.events).filter((c) => c.dst_port === port)).toEqual([
      expect.objectContaining({ dst_addr: '10.0.2.2', dst_port: port, outcome: 'failed', scope: 'build' }),
    ]);
    expect(report.policy).toMatchObject({ network: false, violations: [] });
    expect(report.summary.destinations).toContainEqual(expect.objectContaining({ destination: `10.0.2.2:${port}`, verdict: 'blocked', failed: 1 }));
    expect(log).toContainEqual(expect.stringMatching(new RegExp(`tcp_connect busybox .* -> 10\\.0\\.2\\.2:${port}/tcp failed \\[blocked: network disabled\\]$`)));
    // --debug: every event, as JSON.
    expect(log.filter((l) => l.startsWith(`${LOG_PREFIX} event {`))).toHaveLength(report.events.length);
  });
});

describe('a custom initramfs without the hook', () => {
  const vm = useVm('no-hook', (workspace) => podFor(root, workspace), { initramfs: initramfsWithoutHook });

  it('builds on with a warning and no report', async () => {
    expect((await step(vm.runner!, 'true')).code).toBe(0);
    expect(await vm.runner!.collectObservability()).toBeNull();
    const log: string[] = [];
    const outcome = await observeBuild({ runner: vm.runner!, policy: networkPolicyFromFlags({}), pkg: PKG, arch: 'x86_64', archDir: vm.archDir, debug: false, log: (l) => log.push(l) });
    expect(outcome).toMatchObject({ report: null, reportPath: null });
    expect(log).toEqual([expect.stringContaining(`${LOG_PREFIX} warning: the VM initramfs has no observability hook`)]);
    await expect(
      observeBuild({ runner: vm.runner!, policy: networkPolicyFromFlags({ networkAllow: ['10.0.2.2:1'] }), pkg: PKG, arch: 'x86_64', archDir: vm.archDir, debug: false, log: () => undefined }),
    ).rejects.toThrow('--network-allow cannot be enforced');
  });
});
