// The JSON report written next to a build's packages: <out>/<arch>/<name>-<ver>-r<N>.observability.json, with
// every event, the summary, the policy and its verdicts, and how complete the recording was.
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BuilderError } from '../errors.ts';
import type { HookStatus, ObservedEvent } from './events.ts';
import { describeViolation, type NetworkPolicy, type PolicyResult } from './policy.ts';
import { assessRecording, type ObservabilityResult, type RecordingAssessment, type Retrieval } from './recording.ts';
import { type ObservabilitySummary, summarize } from './summary.ts';

export const REPORT_VERSION = 1;

export interface ReportPackage {
  name: string;
  version: string;
  epoch: number;
}

export interface ObservabilityReport {
  version: typeof REPORT_VERSION;
  package: ReportPackage;
  arch: string;
  runner: string;
  recording: {
    source: string;
    bootTime: string;
    /** True when nothing suggests events are missing. */
    complete: boolean;
    missing: string[];
    notes: string[];
    hook: HookStatus;
    retrieval: Retrieval;
  };
  policy: {
    network: boolean;
    /** `--network-allow` entries as given; empty with network means any destination. */
    allow: string[];
    /** Host names in the list that did not resolve. */
    unresolved: string[];
    violations: string[];
  };
  summary: ObservabilitySummary;
  events: ObservedEvent[];
}

export function reportFileName(pkg: ReportPackage): string {
  return `${pkg.name}-${pkg.version}-r${pkg.epoch}.observability.json`;
}

export function reportPath(archDir: string, pkg: ReportPackage): string {
  return join(archDir, reportFileName(pkg));
}

export function buildReport(o: {
  pkg: ReportPackage;
  arch: string;
  runner: string;
  result: ObservabilityResult;
  policy: NetworkPolicy;
  verdicts: PolicyResult;
  assessment?: RecordingAssessment;
}): ObservabilityReport {
  const assessment = o.assessment ?? assessRecording(o.result);
  const events = [...o.result.events].sort((a, b) => a.uptime - b.uptime);
  return {
    version: REPORT_VERSION,
    package: { name: o.pkg.name, version: o.pkg.version, epoch: o.pkg.epoch },
    arch: o.arch,
    runner: o.runner,
    recording: {
      source: o.result.source,
      bootTime: o.result.bootTime,
      complete: assessment.missing.length === 0,
      missing: assessment.missing,
      notes: assessment.notes,
      hook: o.result.status,
      retrieval: o.result.retrieval,
    },
    policy: {
      network: o.policy.network,
      allow: o.policy.allow.map((r) => r.text),
      unresolved: o.verdicts.unresolved,
      violations: o.verdicts.violations.map(describeViolation),
    },
    summary: summarize(events, o.verdicts.judged),
    events,
  };
}

/** Writes the report to a temp name in the same directory and renames it into place. */
export async function writeReport(path: string, report: ObservabilityReport): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fh = await open(temp, 'w', 0o644);
    try {
      // One event per line keeps a large report diffable and greppable.
      const { events, ...rest } = report;
      const head = JSON.stringify(rest, null, 2);
      let buffered = `${head.slice(0, -2)},\n  "events": [`;
      for (const [i, e] of events.entries()) {
        buffered += `${i === 0 ? '\n' : ',\n'}    ${JSON.stringify(e)}`;
        if (buffered.length >= 1 << 20) {
          await fh.write(buffered);
          buffered = '';
        }
      }
      await fh.write(`${buffered}${events.length > 0 ? '\n  ]\n}\n' : ']\n}\n'}`);
    } finally {
      await fh.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw new BuilderError(`cannot write the observability report ${path}: ${(err as Error).message}`, { cause: err });
  }
}
