// How observability shows up in a build's output: `[OBSERVABILITY]` log lines (a header with counts, one line
// per network connection attempt, every event under --debug) and a short human summary for the end.
import type { NetworkConnection } from './events.ts';
import { formatDestination, type JudgedConnection, type Verdict } from './policy.ts';
import type { ObservabilityReport } from './report.ts';

export const LOG_PREFIX = '[OBSERVABILITY]';

const VERDICT_TEXT: Record<Verdict, string> = {
  loopback: 'inside the sandbox',
  implicit: 'allowed',
  allowed: 'allowed',
  denied: 'NOT ALLOWED',
  blocked: 'blocked: network disabled',
  leaked: 'ESTABLISHED ALTHOUGH THE NETWORK WAS DISABLED',
};

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function connectionLine(c: NetworkConnection, j: JudgedConnection | undefined): string {
  const src = c.src_addr ? `${formatDestination(c.src_addr, c.src_port)} -> ` : '';
  const state = c.function === 'tcp_connect' ? ` ${c.outcome}` : '';
  const verdict = j ? ` [${VERDICT_TEXT[j.verdict]}${j.reason ? `: ${j.reason}` : ''}]` : '';
  const who = `${c.process} (pid ${c.pid}${c.uid !== null ? `, uid ${c.uid}` : ''}${c.scope === 'builder' ? ', sandbox plumbing' : ''})`;
  return `${LOG_PREFIX} ${c.function} ${who} ${src}${formatDestination(c.dst_addr, c.dst_port)}/${c.protocol}${state}${verdict}`;
}

/** The log lines for a report; `judged` gives each attempt's verdict. */
export function observabilityLogLines(report: ObservabilityReport, judged: readonly JudgedConnection[], debug: boolean): string[] {
  const s = report.summary;
  const attempts = s.destinations.reduce((n, d) => n + d.attempts, 0);
  const lines = [
    `${LOG_PREFIX} ${plural(s.executions, 'program')} executed by the build (${plural(s.programs.length, 'distinct program')}, ` +
      `${s.builderExecutions} more by the sandbox itself), ${plural(attempts, 'network connection attempt')} to ${plural(s.destinations.length, 'destination')}; ` +
      `recording ${report.recording.complete ? 'complete' : 'INCOMPLETE'} (${report.recording.source})`,
  ];
  for (const m of report.recording.missing) lines.push(`${LOG_PREFIX} warning: ${m}`);
  for (const n of report.recording.notes) lines.push(`${LOG_PREFIX} note: ${n}`);
  for (const sample of report.recording.retrieval.malformedSamples) lines.push(`${LOG_PREFIX} malformed line: ${sample}`);
  const verdicts = new Map(judged.map((j) => [j.connection, j]));
  for (const e of report.events) {
    if (e.type === 'net' && e.function !== 'tcp_close') lines.push(connectionLine(e, verdicts.get(e)));
  }
  for (const host of report.policy.unresolved) lines.push(`${LOG_PREFIX} warning: --network-allow host ${host} does not resolve; it allows nothing`);
  if (debug) for (const e of report.events) lines.push(`${LOG_PREFIX} event ${JSON.stringify(e)}`);
  return lines;
}

const TOP_PROGRAMS = 6;

/** A few lines for the end of the build output. */
export function observabilitySummaryLines(report: ObservabilityReport, reportFile: string): string[] {
  const s = report.summary;
  const top = s.programs.slice(0, TOP_PROGRAMS).map((p) => `${p.program} ×${p.count}`);
  const more = s.programs.length > TOP_PROGRAMS ? `, … ${s.programs.length - TOP_PROGRAMS} more` : '';
  const lines = [`observability: ${plural(s.executions, 'program')} run by the build${top.length > 0 ? ` (${top.join(', ')}${more})` : ''}`];
  if (s.destinations.length === 0) lines.push('observability: no network connections');
  for (const d of s.destinations) {
    const outcome = d.protocol === 'tcp' ? ` (${[d.established && `${d.established} established`, d.failed && `${d.failed} failed`, d.pending && `${d.pending} pending`].filter(Boolean).join(', ')})` : '';
    lines.push(`observability: ${d.destination}/${d.protocol} ×${d.attempts}${outcome} by ${d.processes.join(', ')}: ${VERDICT_TEXT[d.verdict]}${d.reason ? ` (${d.reason})` : ''}`);
  }
  if (!report.recording.complete) lines.push(`observability: recording incomplete: ${report.recording.missing.join('; ')}`);
  lines.push(`observability report: ${reportFile}`);
  return lines;
}
