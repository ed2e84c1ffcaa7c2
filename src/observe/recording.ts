// A retrieved recording and how far it can be trusted. Everything that may have cost events (lost trace
// buffers, a converter that had to be killed, tracing switched off, the 50 MiB cap, unreadable lines) is
// spelled out; a network allow-list is only enforced on a recording that has none of them.
import type { HookStatus, ObservedEvent } from './events.ts';
import type { ImplicitDestination } from './policy.ts';

export interface Retrieval {
  /** Bytes of events read. */
  bytes: number;
  /** Size of the events file in the sandbox, when known. */
  fileBytes?: number;
  /** True when the file was larger than what was read (the 50 MiB cap). */
  truncated: boolean;
  lines: number;
  malformed: number;
  malformedSamples: string[];
}

export interface ObservabilityResult {
  /** Which recorder produced it, e.g. `qemu guest hook`. */
  source: string;
  status: HookStatus;
  events: ObservedEvent[];
  retrieval: Retrieval;
  /** Wall-clock time of the VM's boot (what event timestamps count from). */
  bootTime: string;
  /** Destinations that are part of the sandbox itself (the VM's DNS resolver). */
  implicit: ImplicitDestination[];
}

export interface RecordingAssessment {
  /** Reasons network events may be missing; non-empty means an allow-list cannot be verified. */
  missing: string[];
  /** Other gaps (e.g. arguments not recorded) that do not affect the network policy. */
  notes: string[];
}

/** What, when the hook says it is unavailable, may hide connections (`converter`: nothing is written at all). */
const NETWORK_FEATURES = ['tcp', 'udp', 'udp6', 'converter'];

export function assessRecording(result: ObservabilityResult): RecordingAssessment {
  const { status, retrieval } = result;
  const missing: string[] = [];
  const notes: string[] = [];
  if (status.state === 'failed') missing.push(`the hook could not record anything${status.error ? `: ${status.error}` : ''}`);
  else if (status.state !== 'stopped') missing.push(`the hook is in state "${status.state}", not stopped`);
  const unavailableNet = status.unavailable.filter((f) => NETWORK_FEATURES.includes(f));
  const unavailableOther = status.unavailable.filter((f) => !NETWORK_FEATURES.includes(f));
  if (unavailableNet.length > 0) missing.push(`the kernel would not let the hook record ${unavailableNet.join(', ')}`);
  if (unavailableOther.length > 0) notes.push(`not recorded (unsupported by the kernel): ${unavailableOther.join(', ')}`);
  if (status.converter === 'killed') missing.push('the converter did not finish and was killed; the last events may be missing');
  else if (status.converter === 'died') missing.push('the converter ended during the build; what happened after that was not recorded');
  else if (status.state === 'stopped' && (!status.stats || !status.stats.marker)) missing.push('the converter ended before reading everything');
  if (status.tampered) missing.push('tracing was switched off inside the sandbox during the build (root in the VM can do that)');
  const lost = Math.max(status.stats?.lost ?? 0, result.events.reduce((n, e) => n + (e.type === 'lost' ? e.count : 0), 0));
  if (lost > 0) missing.push(`${lost} trace events were lost (the kernel's trace buffer overflowed)`);
  if (status.stats && status.stats.dropped > 0) missing.push(`${status.stats.dropped} events were not written (the events file reached its limit in the VM)`);
  if (retrieval.truncated) {
    missing.push(`only the first ${formatBytes(retrieval.bytes)} of events were read${retrieval.fileBytes !== undefined ? ` (the file has ${formatBytes(retrieval.fileBytes)})` : ''}`);
  }
  if (retrieval.malformed > 0) missing.push(`${retrieval.malformed} malformed event lines were skipped`);
  if (status.converterError) notes.push(`converter said: ${status.converterError}`);
  return { missing, notes };
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}
