// The summary of what a build did: the programs its steps executed, with counts, and the network
// destinations it tried to reach, grouped by destination with what happened and what the policy said.
import type { NetworkConnection, ObservedEvent, ProcessExecution } from './events.ts';
import { canonicalAddress, formatDestination, type JudgedConnection, type Verdict } from './policy.ts';

export interface ProgramCount {
  /** The program as a user would name it: its path, or `applet (via /bin/busybox)` for busybox applets. */
  program: string;
  count: number;
}

export interface DestinationSummary {
  /** `10.0.2.2:8080`, `[fec0::2]:443`. */
  destination: string;
  protocol: 'tcp' | 'udp';
  dst_addr: string;
  dst_port: number;
  /** Connection attempts (tcp_connect) or sending processes (udp_sendmsg). */
  attempts: number;
  established: number;
  failed: number;
  pending: number;
  /** Task names of the processes that connected, sorted. */
  processes: string[];
  /** The policy's verdict (the worst one when attempts were judged differently). */
  verdict: Verdict;
  /** The rule or reason that allowed it. */
  reason?: string;
}

export interface ObservabilitySummary {
  /** Executions by the build's steps (scope `build`). */
  executions: number;
  /** Executions by the sandbox's own plumbing (SSH sessions, the build channel, hooks). */
  builderExecutions: number;
  /** Programs the steps executed, most frequent first. */
  programs: ProgramCount[];
  destinations: DestinationSummary[];
  /** Events the kernel dropped (trace buffer overflow). */
  lostEvents: number;
}

/** How a program is named in summaries. */
export function programName(e: ProcessExecution): string {
  if (e.filename === '/proc/self/exe') {
    const base = (s: string): string => s.slice(s.lastIndexOf('/') + 1);
    // `busybox nc ...` runs the applet named by the first argument.
    const applet = e.argv && base(e.argv[0] ?? '') === 'busybox' && e.argv[1] ? e.argv[1] : (e.argv?.[0] ?? e.comm);
    return `${base(applet)} (via ${e.binary})`;
  }
  return e.filename;
}

const VERDICT_ORDER: Verdict[] = ['leaked', 'denied', 'blocked', 'allowed', 'implicit', 'loopback'];

export function summarize(events: readonly ObservedEvent[], judged: readonly JudgedConnection[]): ObservabilitySummary {
  const counts = new Map<string, number>();
  let executions = 0;
  let builderExecutions = 0;
  let lostEvents = 0;
  for (const e of events) {
    if (e.type === 'lost') lostEvents += e.count;
    if (e.type !== 'exec') continue;
    if (e.scope !== 'build') {
      builderExecutions++;
      continue;
    }
    executions++;
    const name = programName(e);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const programs = [...counts].map(([program, count]) => ({ program, count })).sort((a, b) => b.count - a.count || a.program.localeCompare(b.program));

  const verdicts = new Map<NetworkConnection, JudgedConnection>(judged.map((j) => [j.connection, j]));
  const groups = new Map<string, DestinationSummary & { names: Set<string> }>();
  for (const e of events) {
    if (e.type !== 'net' || e.function === 'tcp_close') continue;
    const addr = canonicalAddress(e.dst_addr);
    const key = `${e.protocol} ${addr} ${e.dst_port}`;
    let g = groups.get(key);
    if (!g) {
      g = {
        destination: formatDestination(addr, e.dst_port), protocol: e.protocol, dst_addr: addr, dst_port: e.dst_port,
        attempts: 0, established: 0, failed: 0, pending: 0, processes: [], verdict: 'loopback', names: new Set(),
      };
      groups.set(key, g);
    }
    g.attempts++;
    if (e.outcome === 'established') g.established++;
    else if (e.outcome === 'failed') g.failed++;
    else if (e.outcome === 'pending') g.pending++;
    g.names.add(e.process);
    const j = verdicts.get(e);
    if (j && (g.attempts === 1 || VERDICT_ORDER.indexOf(j.verdict) < VERDICT_ORDER.indexOf(g.verdict))) {
      g.verdict = j.verdict;
      g.reason = j.reason;
    }
  }
  const destinations = [...groups.values()]
    .map(({ names, ...g }) => ({ ...g, processes: [...names].sort() }))
    .sort((a, b) => VERDICT_ORDER.indexOf(a.verdict) - VERDICT_ORDER.indexOf(b.verdict) || b.attempts - a.attempts || a.destination.localeCompare(b.destination));
  return { executions, builderExecutions, programs, destinations, lostEvents };
}
