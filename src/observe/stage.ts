// The observability stage of a build, in one call for the build to make after the last step and before the
// sandbox is terminated: retrieve the recording, log it, write the report next to the packages, and fail the
// build (after the report is written) when the network policy was broken or cannot be verified.
import { UsageError } from '../errors.ts';
import type { Runner } from '../runners/runner.ts';
import { ObservabilityError } from './events.ts';
import { LOG_PREFIX, observabilityLogLines, observabilitySummaryLines } from './format.ts';
import { isObservableRunner } from './observable.ts';
import { connectionAttempts, describeViolation, evaluateNetworkPolicy, NetworkPolicyError, type NetworkPolicy, type Resolver } from './policy.ts';
import { assessRecording } from './recording.ts';
import { buildReport, type ObservabilityReport, type ReportPackage, reportPath, writeReport } from './report.ts';

/** For `builder build --help` (the last lines replace its "Network: steps have no network." line). */
export const OBSERVABILITY_HELP = `Observability: with --runner qemu, every program the build runs and every network connection it attempts
is logged ([OBSERVABILITY]) and written to <out-dir>/<arch>/<name>-<version>-r<epoch>.observability.json. It is a
QEMU-runner feature: the Bubblewrap runner records nothing (and refuses --network-allow).
Network: steps have no network unless --network; --network-allow HOST:PORT (repeatable, implies --network) fails
the build after its steps if it connected anywhere else (loopback and the VM's DNS resolver always pass).`;

export interface ObservabilityStageOptions {
  runner: Runner;
  policy: NetworkPolicy;
  /** The main package (names the report). */
  pkg: ReportPackage;
  arch: string;
  /** `<out>/<arch>`: the report goes next to the packages. */
  archDir: string;
  debug: boolean;
  /** Where `[OBSERVABILITY]` lines go (the build's log / progress output). */
  log: (line: string) => void;
  resolve?: Resolver;
  signal?: AbortSignal;
}

export interface ObservabilityOutcome {
  report: ObservabilityReport | null;
  reportPath: string | null;
  /** Lines for the end of the build output. */
  summary: string[];
}

/**
 * Refuses, before anything runs, a policy the chosen runner cannot enforce: an allow-list needs a runner that
 * records connections.
 */
export function checkObservabilitySupport(runner: Runner, policy: NetworkPolicy): void {
  if (policy.allow.length > 0 && !isObservableRunner(runner)) {
    throw new UsageError(
      `--network-allow: the ${runner.name} runner cannot observe network connections, so the list cannot be enforced; use --runner qemu (or --network without a list)`,
    );
  }
}

export async function observeBuild(o: ObservabilityStageOptions): Promise<ObservabilityOutcome> {
  const restricted = o.policy.allow.length > 0;
  if (!isObservableRunner(o.runner)) {
    checkObservabilitySupport(o.runner, o.policy);
    return { report: null, reportPath: null, summary: [`observability: not recorded (the ${o.runner.name} runner does not observe builds; --runner qemu does)`] };
  }
  const result = await o.runner.collectObservability({ signal: o.signal });
  if (result === null) {
    const why = 'the VM initramfs has no observability hook (no /etc/builder/observability), so nothing was recorded';
    if (restricted) throw new ObservabilityError(`--network-allow cannot be enforced: ${why}; use the default initramfs or add the hook to yours`);
    o.log(`${LOG_PREFIX} warning: ${why}; no report is written`);
    return { report: null, reportPath: null, summary: [`observability: not recorded (${why})`] };
  }
  const assessment = assessRecording(result);
  const verdicts = await evaluateNetworkPolicy(connectionAttempts(result.events), o.policy, { implicit: result.implicit, resolve: o.resolve });
  const report = buildReport({ pkg: o.pkg, arch: o.arch, runner: o.runner.name, result, policy: o.policy, verdicts, assessment });
  for (const line of observabilityLogLines(report, verdicts.judged, o.debug)) o.log(line);
  const path = reportPath(o.archDir, o.pkg);
  await writeReport(path, report);
  o.log(`${LOG_PREFIX} report written to ${path}`);

  if (verdicts.violations.length > 0) {
    const lines = verdicts.violations.map(describeViolation);
    throw new NetworkPolicyError(
      verdicts.violations.length === 1
        ? `network policy violated: ${lines[0]}`
        : `network policy violated by ${verdicts.violations.length} connections: ${lines[0]}, …`,
      { details: [...lines, `report: ${path}`] },
    );
  }
  if (restricted && assessment.missing.length > 0) {
    throw new NetworkPolicyError(`--network-allow cannot be verified: the recording may be missing connections (${assessment.missing.join('; ')})`, {
      details: [`report: ${path}`],
    });
  }
  return { report, reportPath: path, summary: observabilitySummaryLines(report, path) };
}
