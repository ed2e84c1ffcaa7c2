// The report, its summary and the [OBSERVABILITY] lines, from events recorded in a real VM; and the build
// stage that ties them to the policy, with runners that can and cannot observe.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.ts';
import { QEMU_USER_NET_RESOLVER } from '../../src/observe/collect.ts';
import { ObservabilityError, parseHookStatus } from '../../src/observe/events.ts';
import { LOG_PREFIX, observabilityLogLines } from '../../src/observe/format.ts';
import { readEventStream } from '../../src/observe/ndjson.ts';
import type { ObservableRunner } from '../../src/observe/observable.ts';
import { isObservableRunner } from '../../src/observe/observable.ts';
import { connectionAttempts, evaluateNetworkPolicy, NetworkPolicyError, networkPolicyFromFlags, NO_NETWORK } from '../../src/observe/policy.ts';
import { assessRecording, type ObservabilityResult } from '../../src/observe/recording.ts';
import { buildReport, reportPath, writeReport } from '../../src/observe/report.ts';
import { checkObservabilitySupport, observeBuild } from '../../src/observe/stage.ts';
import { programName } from '../../src/observe/summary.ts';
import { BubblewrapRunner } from '../../src/runners/bubblewrap.ts';
import type { Runner } from '../../src/runners/runner.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { fixture } from './helpers.ts';

const PKG = { name: 'hello', version: '1.2.3', epoch: 4 };
/** The host server of the recorded scenario (record-trace.ts picks a free port) and who connected to it. */
const SERVER = await (async () => {
  const connect = (await fixture('scenario.events.json'))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { function?: string; outcome?: string; dst_port: number; pid: number })
    .find((e) => e.function === 'tcp_connect' && e.outcome === 'established' && e.dst_port !== 22);
  if (!connect) throw new Error('the scenario has no connection to the host server');
  return { addr: '10.0.2.2', port: connect.dst_port, pid: connect.pid };
})();

async function recorded(overStatus: Record<string, unknown> = {}): Promise<ObservabilityResult> {
  const clock = { bootEpochMs: Date.UTC(2026, 5, 1) };
  const events = await readEventStream([Buffer.from(await fixture('scenario.events.json'))], { clock });
  const status = parseHookStatus(JSON.stringify({ ...JSON.parse(await fixture('scenario.status.json')), ...overStatus }));
  return {
    source: 'qemu guest hook',
    status,
    events: events.events,
    retrieval: { bytes: events.bytes, fileBytes: events.bytes, truncated: false, lines: events.lines, malformed: 0, malformedSamples: [] },
    bootTime: new Date(clock.bootEpochMs).toISOString(),
    implicit: [QEMU_USER_NET_RESOLVER],
  };
}

/** A runner whose sandbox is not started: only what the stage calls is real. */
function observable(result: ObservabilityResult | null | Error): ObservableRunner & { calls: number } {
  const runner = {
    name: 'qemu',
    calls: 0,
    testUsability: async () => ({ usable: true as const }),
    start: async () => undefined,
    run: async () => 0,
    workspaceTar: async () => null,
    releaseData: async () => '',
    terminate: async () => undefined,
    collectObservability: async () => {
      runner.calls++;
      if (result instanceof Error) throw result;
      return result;
    },
  };
  return runner;
}

describe('the report', () => {
  const tempDir = useTempDirs();

  it('summarizes programs and destinations, and is written whole via a temp file', async () => {
    const result = await recorded();
    const policy = networkPolicyFromFlags({ networkAllow: [`${SERVER.addr}:${SERVER.port}`] });
    const verdicts = await evaluateNetworkPolicy(connectionAttempts(result.events), policy, { implicit: result.implicit });
    const report = buildReport({ pkg: PKG, arch: 'x86_64', runner: 'qemu', result, policy, verdicts });

    expect(report.recording).toMatchObject({ complete: true, missing: [] });
    expect(report.summary.programs).toContainEqual({ program: '/bin/sh', count: expect.any(Number) });
    expect(report.summary.programs).toContainEqual({ program: 'nc (via /bin/sh)', count: 3 });
    expect(report.summary.programs).toContainEqual({ program: 'nslookup (via /bin/sh)', count: 1 });
    expect(report.summary.executions).toBe(report.events.filter((e) => e.type === 'exec' && e.scope === 'build').length);
    expect(report.summary.builderExecutions).toBeGreaterThan(0);
    const server = report.summary.destinations.find((d) => d.dst_port === SERVER.port);
    expect(server).toMatchObject({ destination: `${SERVER.addr}:${SERVER.port}`, protocol: 'tcp', attempts: 1, established: 1, verdict: 'allowed', processes: ['busybox'] });
    // Port 9 was refused; it is not in the list.
    expect(report.summary.destinations[0]).toMatchObject({ destination: '10.0.2.2:9', failed: 1, verdict: 'denied' });
    expect(report.summary.destinations.find((d) => d.protocol === 'udp')).toMatchObject({ destination: '10.0.2.3:53', verdict: 'implicit' });
    expect(report.summary.destinations.find((d) => d.dst_addr === '::1')).toMatchObject({ destination: '[::1]:22', verdict: 'loopback' });
    expect(report.policy.violations).toEqual([expect.stringContaining('10.0.2.2:9/tcp, which --network-allow does not list')]);

    const dir = await tempDir();
    const file = reportPath(dir, PKG);
    expect(path.basename(file)).toBe('hello-1.2.3-r4.observability.json');
    await writeReport(file, report);
    expect(await readdir(dir)).toEqual(['hello-1.2.3-r4.observability.json']);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(JSON.parse(JSON.stringify(report)));
  });

  it('fails cleanly, leaving nothing, when the directory is not writable', async () => {
    const dir = await tempDir();
    const result = await recorded();
    const verdicts = await evaluateNetworkPolicy([], NO_NETWORK);
    const report = buildReport({ pkg: PKG, arch: 'x86_64', runner: 'qemu', result, policy: NO_NETWORK, verdicts });
    await expect(writeReport(path.join(dir, 'missing', 'r.json'), report)).rejects.toThrow('cannot write the observability report');
    expect(await readdir(dir)).toEqual([]);
  });

  it('says what may be missing from a recording', async () => {
    const result = await recorded({ converter: 'killed', tampered: true, unavailable: ['argv', 'udp6'], stats: { lines: 1, events: 1, bytes: 1, dropped: 5, lost: 12, unparsed: 0, marker: false } });
    result.retrieval = { ...result.retrieval, truncated: true, bytes: 52428800, fileBytes: 70000000, malformed: 2 };
    const { missing, notes } = assessRecording(result);
    expect(missing).toEqual([
      'the kernel would not let the hook record udp6',
      'the converter did not finish and was killed; the last events may be missing',
      'tracing was switched off inside the sandbox during the build (root in the VM can do that)',
      '12 trace events were lost (the kernel\'s trace buffer overflowed)',
      '5 events were not written (the events file reached its limit in the VM)',
      'only the first 50.0 MiB of events were read (the file has 66.8 MiB)',
      '2 malformed event lines were skipped',
    ]);
    expect(notes).toEqual(['not recorded (unsupported by the kernel): argv']);
    const died = await recorded({ converter: 'died', stats: undefined });
    expect(assessRecording(died).missing).toEqual(['the converter ended during the build; what happened after that was not recorded']);
    const noStats = await recorded({ stats: undefined });
    expect(assessRecording(noStats).missing).toEqual(['the converter ended before reading everything']);
  });

  it('logs a header, one line per connection and, under --debug, every event', async () => {
    const result = await recorded();
    const verdicts = await evaluateNetworkPolicy(connectionAttempts(result.events), NO_NETWORK, { implicit: result.implicit });
    const report = buildReport({ pkg: PKG, arch: 'x86_64', runner: 'qemu', result, policy: NO_NETWORK, verdicts });
    const lines = observabilityLogLines(report, verdicts.judged, false);
    expect(lines.every((l) => l.startsWith(`${LOG_PREFIX} `))).toBe(true);
    expect(lines[0]).toMatch(/^\[OBSERVABILITY\] \d+ programs executed by the build \(\d+ distinct programs, \d+ more by the sandbox itself\), 4 network connection attempts to 4 destinations; recording complete/);
    const line = (re: string): RegExp => new RegExp(`^\\[OBSERVABILITY\\] ${re}$`);
    expect(lines).toContainEqual(expect.stringMatching(line('tcp_connect busybox \\(pid \\d+, uid 1000\\) 10\\.0\\.2\\.15:\\d+ -> 10\\.0\\.2\\.2:9/tcp failed \\[blocked: network disabled\\]')));
    expect(lines).toContainEqual(expect.stringMatching(line('udp_sendmsg busybox \\(pid \\d+, uid 1000\\) 10\\.0\\.2\\.15:\\d+ -> 10\\.0\\.2\\.3:53/udp \\[blocked: network disabled\\]')));
    // The scenario was recorded with the network on: judged as if it had been off, that connection is a leak.
    expect(lines).toContainEqual(
      expect.stringMatching(line(`tcp_connect busybox \\(pid ${SERVER.pid}, uid 1000\\) 10\\.0\\.2\\.15:\\d+ -> 10\\.0\\.2\\.2:${SERVER.port}/tcp established \\[ESTABLISHED ALTHOUGH THE NETWORK WAS DISABLED\\]`)),
    );
    expect(lines.filter((l) => l.includes(' event {'))).toEqual([]);
    const debug = observabilityLogLines(report, verdicts.judged, true);
    expect(debug.filter((l) => l.startsWith(`${LOG_PREFIX} event {`))).toHaveLength(report.events.length);
  });

  it('names busybox applets by the applet', () => {
    const base = { type: 'exec' as const, timestamp: '', uptime: 0, pid: 1, ppid: null, uid: null, comm: 'exe', scope: 'build' as const };
    expect(programName({ ...base, filename: '/proc/self/exe', binary: '/bin/busybox', argv: ['/usr/bin/wget', 'x'], argv_complete: true })).toBe('wget (via /bin/busybox)');
    expect(programName({ ...base, filename: '/usr/bin/gcc', binary: '/usr/bin/gcc' })).toBe('/usr/bin/gcc');
  });
});

describe('the observability stage of a build', () => {
  const tempDir = useTempDirs();
  const stage = async (runner: Runner, flags: { network?: boolean; networkAllow?: string[] }, archDir: string, log: string[] = []) =>
    observeBuild({ runner, policy: networkPolicyFromFlags(flags), pkg: PKG, arch: 'x86_64', archDir, debug: false, log: (l) => log.push(l) });

  it('writes the report and returns a summary when the policy holds', async () => {
    const dir = await tempDir();
    const log: string[] = [];
    const outcome = await stage(observable(await recorded()), { network: true }, dir, log);
    expect(outcome.reportPath).toBe(path.join(dir, 'hello-1.2.3-r4.observability.json'));
    expect(JSON.parse(await readFile(outcome.reportPath!, 'utf8'))).toMatchObject({ package: PKG, policy: { network: true, violations: [] } });
    expect(log.at(-1)).toBe(`${LOG_PREFIX} report written to ${outcome.reportPath}`);
    expect(outcome.summary[0]).toMatch(/^observability: \d+ programs run by the build \(/);
    expect(outcome.summary).toContainEqual(`observability: 10.0.2.2:${SERVER.port}/tcp ×1 (1 established) by busybox: allowed (--network)`);
    expect(outcome.summary.at(-1)).toBe(`observability report: ${outcome.reportPath}`);
  });

  it('fails the build naming the process and destination, after writing the report', async () => {
    const dir = await tempDir();
    const err = await stage(observable(await recorded()), { networkAllow: ['10.0.2.2:9'] }, dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkPolicyError);
    expect((err as Error).message).toBe(`network policy violated: busybox (pid ${SERVER.pid}, /bin/sh) connected to 10.0.2.2:${SERVER.port}/tcp, which --network-allow does not list`);
    expect((err as NetworkPolicyError).details.at(-1)).toBe(`report: ${path.join(dir, 'hello-1.2.3-r4.observability.json')}`);
    expect(await readdir(dir)).toEqual(['hello-1.2.3-r4.observability.json']);
  });

  it('refuses to vouch for an allow-list when events may be missing', async () => {
    const dir = await tempDir();
    const result = await recorded({ stats: { lines: 1, events: 1, bytes: 1, dropped: 0, lost: 3, unparsed: 0, marker: true } });
    await expect(stage(observable(result), { networkAllow: [`10.0.2.2:${SERVER.port}`, '10.0.2.2:9'] }, dir)).rejects.toThrow(
      '--network-allow cannot be verified: the recording may be missing connections (3 trace events were lost',
    );
    // Without a list the same recording is reported, with a warning.
    const log: string[] = [];
    await stage(observable(result), { network: true }, dir, log);
    expect(log).toContain(`${LOG_PREFIX} warning: 3 trace events were lost (the kernel's trace buffer overflowed)`);
  });

  it('warns and writes nothing when the initramfs has no hook, unless an allow-list needs one', async () => {
    const dir = await tempDir();
    const log: string[] = [];
    const outcome = await stage(observable(null), {}, dir, log);
    expect(outcome).toMatchObject({ report: null, reportPath: null });
    expect(log).toEqual([`${LOG_PREFIX} warning: the VM initramfs has no observability hook (no /etc/builder/observability), so nothing was recorded; no report is written`]);
    await expect(stage(observable(null), { networkAllow: ['example.org:443'] }, dir)).rejects.toThrow(ObservabilityError);
    expect(await readdir(dir)).toEqual([]);
  });

  it('passes on errors retrieving the recording', async () => {
    const runner = observable(new ObservabilityError('the VM has the hook but no events file'));
    await expect(stage(runner, {}, await tempDir())).rejects.toThrow('no events file');
  });

  it('knows the Bubblewrap runner does not observe, and refuses an allow-list with it before the build', async () => {
    const bwrap = new BubblewrapRunner();
    expect(isObservableRunner(bwrap)).toBe(false);
    expect(isObservableRunner(observable(null))).toBe(true);
    expect(() => checkObservabilitySupport(bwrap, networkPolicyFromFlags({ networkAllow: ['example.org:443'] }))).toThrow(UsageError);
    expect(() => checkObservabilitySupport(bwrap, networkPolicyFromFlags({ network: true }))).not.toThrow();
    const outcome = await stage(bwrap, { network: true }, await tempDir());
    expect(outcome.summary).toEqual(['observability: not recorded (the bubblewrap runner does not observe builds; --runner qemu does)']);
  });
});
