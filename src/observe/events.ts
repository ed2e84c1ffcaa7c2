// What the observability hook records, as the host sees it. The guest writes one JSON object per line with its
// boot clock (`time`, seconds since the VM booted); parsing checks every field and adds the wall-clock
// timestamp, so the rest of the host never sees an unchecked object. A line that does not fit is malformed:
// skipped and counted by the reader, never guessed at.
import { BuilderError } from '../errors.ts';

/** `build`: a step's command and everything it started; `builder`: the VM's own plumbing (init, SSH, hooks). */
export type Scope = 'build' | 'builder';

export interface ProcessExecution {
  type: 'exec';
  /** ISO 8601, from the VM's boot clock anchored to the host's clock at retrieval. */
  timestamp: string;
  /** Seconds since the VM booted, as traced. */
  uptime: number;
  pid: number;
  /** Parent process; null when it started before tracing did. */
  ppid: number | null;
  /** Real uid; null when unknown. */
  uid: number | null;
  /** The path given to execve(2) (a script's own path for scripts). */
  filename: string;
  /** The program file: the filename, except for /proc/self/exe (busybox applets), where it is the caller's. */
  binary: string;
  /** The kernel's task name right after the exec. */
  comm: string;
  /** Arguments, when the hook could read them. */
  argv?: string[];
  /** False when argv is cut short (more than the hook records, or an argument it could not read). */
  argv_complete?: boolean;
  /** False when the file name had a newline in it and only its first line was recorded. */
  filename_complete?: boolean;
  scope: Scope;
}

export const NETWORK_FUNCTIONS = ['tcp_connect', 'tcp_close', 'udp_sendmsg'] as const;
export type NetworkFunction = (typeof NETWORK_FUNCTIONS)[number];

export interface NetworkConnection {
  type: 'net';
  /** `tcp_connect`: an outbound TCP connection attempt; `tcp_close`: its end; `udp_sendmsg`: the first
   *  datagram a process sent to a destination. */
  function: NetworkFunction;
  timestamp: string;
  uptime: number;
  pid: number;
  /** Task name of the process that connected. */
  process: string;
  /** Its program file, when known. */
  binary: string | null;
  uid: number | null;
  protocol: 'tcp' | 'udp';
  family: 'ipv4' | 'ipv6';
  src_addr: string;
  src_port: number;
  dst_addr: string;
  dst_port: number;
  /** tcp_connect: whether the handshake completed, failed, or was still in progress when recording stopped. */
  outcome?: 'established' | 'failed' | 'pending';
  /** tcp_close: whether the connection had been established. */
  established?: boolean;
  scope: Scope;
}

/** The kernel's ring buffer overflowed: `count` events on `cpu` were never seen. */
export interface LostEvents {
  type: 'lost';
  timestamp: string;
  uptime: number;
  cpu: number;
  count: number;
}

export type ObservedEvent = ProcessExecution | NetworkConnection | LostEvents;

/** Recording could not be done or trusted (hook present but broken, events unreadable). */
export class ObservabilityError extends BuilderError {
  override name = 'ObservabilityError';
}

/** Converts the guest's boot-relative seconds to wall-clock time. */
export interface BootClock {
  /** Unix time (ms) at which the VM's boot clock read 0. */
  bootEpochMs: number;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function int(v: Json | undefined, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : undefined;
}

function intOrNull(v: Json | undefined): number | null | undefined {
  return v === null ? null : int(v);
}

function str(v: Json | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function scopeOf(v: Json | undefined): Scope | undefined {
  return v === 'build' || v === 'builder' ? v : undefined;
}

function time(v: Json | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

export function wallClock(uptime: number, clock: BootClock): string {
  return new Date(clock.bootEpochMs + uptime * 1000).toISOString();
}

function parseExec(o: JsonObject, uptime: number, clock: BootClock): ProcessExecution | null {
  const pid = int(o.pid, 1);
  const ppid = intOrNull(o.ppid);
  const uid = intOrNull(o.uid);
  const filename = str(o.filename);
  const binary = str(o.binary);
  const comm = str(o.comm);
  const scope = scopeOf(o.scope);
  if (pid === undefined || ppid === undefined || uid === undefined || filename === undefined || binary === undefined || comm === undefined || scope === undefined) {
    return null;
  }
  const event: ProcessExecution = { type: 'exec', timestamp: wallClock(uptime, clock), uptime, pid, ppid, uid, filename, binary, comm, scope };
  if (o.argv !== undefined) {
    if (!Array.isArray(o.argv) || !o.argv.every((a) => typeof a === 'string')) return null;
    if (typeof o.argv_complete !== 'boolean') return null;
    event.argv = o.argv as string[];
    event.argv_complete = o.argv_complete;
  }
  if (o.filename_complete !== undefined) {
    if (typeof o.filename_complete !== 'boolean') return null;
    event.filename_complete = o.filename_complete;
  }
  return event;
}

function parseNet(o: JsonObject, uptime: number, clock: BootClock): NetworkConnection | null {
  const fn = (NETWORK_FUNCTIONS as readonly Json[]).includes(o.function ?? null) ? (o.function as NetworkFunction) : undefined;
  const pid = int(o.pid);
  const process = str(o.process);
  const binary = o.binary === null ? null : str(o.binary);
  const uid = intOrNull(o.uid);
  const protocol = o.protocol === 'tcp' || o.protocol === 'udp' ? o.protocol : undefined;
  const family = o.family === 'ipv4' || o.family === 'ipv6' ? o.family : undefined;
  const src_addr = str(o.src_addr);
  const dst_addr = str(o.dst_addr);
  const src_port = int(o.src_port, 0, 65535);
  const dst_port = int(o.dst_port, 0, 65535);
  const scope = scopeOf(o.scope);
  if (
    fn === undefined || pid === undefined || process === undefined || binary === undefined || uid === undefined || protocol === undefined ||
    family === undefined || src_addr === undefined || dst_addr === undefined || dst_addr === '' || src_port === undefined ||
    dst_port === undefined || scope === undefined
  ) {
    return null;
  }
  if ((fn === 'udp_sendmsg') !== (protocol === 'udp')) return null;
  const event: NetworkConnection = {
    type: 'net', function: fn, timestamp: wallClock(uptime, clock), uptime, pid, process, binary, uid, protocol, family,
    src_addr, src_port, dst_addr, dst_port, scope,
  };
  if (fn === 'tcp_connect') {
    if (o.outcome !== 'established' && o.outcome !== 'failed' && o.outcome !== 'pending') return null;
    event.outcome = o.outcome;
  }
  if (fn === 'tcp_close') {
    if (typeof o.established !== 'boolean') return null;
    event.established = o.established;
  }
  return event;
}

/** One NDJSON line from the hook → a checked event, or null when the line is malformed. */
export function parseEventLine(line: string, clock: BootClock): ObservedEvent | null {
  let value: Json;
  try {
    value = JSON.parse(line) as Json;
  } catch {
    return null;
  }
  if (!isObject(value)) return null;
  const uptime = time(value.time);
  if (uptime === undefined) return null;
  switch (value.type) {
    case 'exec':
      return parseExec(value, uptime, clock);
    case 'net':
      return parseNet(value, uptime, clock);
    case 'lost': {
      const cpu = int(value.cpu);
      const count = int(value.count, 1);
      if (cpu === undefined || count === undefined) return null;
      return { type: 'lost', timestamp: wallClock(uptime, clock), uptime, cpu, count };
    }
    default:
      return null;
  }
}

/** What the hook says about its own run (status.json, printed by `stop`). */
export interface HookStatus {
  version: number;
  state: 'running' | 'stopped' | 'failed';
  /** The VM's uptime (s) when the status was written; anchors the boot clock. */
  uptime: number;
  /** What is being recorded: exec, fork, argv, uid, tcp, udp, udp6. */
  features: string[];
  /** What the hook could not record (same names as features, plus `converter` when its converter never started). */
  unavailable: string[];
  /** `killed`: it did not finish on its own, the last events may be missing; `died`: it ended during the build. */
  converter?: 'stopped' | 'killed' | 'died';
  /** Tracing was switched off behind the hook's back (root in the VM can). */
  tampered?: boolean;
  error?: string;
  converterError?: string;
  stats?: {
    /** Lines of trace read, events written, events not written because the file reached its limit. */
    lines: number;
    events: number;
    bytes: number;
    dropped: number;
    lost: number;
    unparsed: number;
    /** Whether the converter saw the stop marker (everything before it was read). */
    marker: boolean;
  };
}

function strings(v: Json | undefined): string[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
}

/** Parses the hook's status JSON; throws ObservabilityError when it is not one. */
export function parseHookStatus(text: string): HookStatus {
  let value: Json;
  try {
    value = JSON.parse(text) as Json;
  } catch {
    throw new ObservabilityError(`the observability hook's status is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
  }
  const bad = (what: string): never => {
    throw new ObservabilityError(`the observability hook's status has ${what}: ${JSON.stringify(text.slice(0, 200))}`);
  };
  if (!isObject(value)) return bad('no object');
  const version = int(value.version, 1);
  if (version === undefined) return bad('no version');
  if (version !== 1) throw new ObservabilityError(`the observability hook speaks version ${version}; this builder understands version 1`);
  const state = value.state === 'running' || value.state === 'stopped' || value.state === 'failed' ? value.state : bad('no valid state');
  const uptime = time(value.uptime) ?? bad('no uptime');
  const features = strings(value.features) ?? bad('no feature list');
  const unavailable = strings(value.unavailable) ?? bad('no list of unavailable features');
  const status: HookStatus = { version, state, uptime, features, unavailable };
  if (value.converter === 'stopped' || value.converter === 'killed' || value.converter === 'died') status.converter = value.converter;
  if (typeof value.tampered === 'boolean') status.tampered = value.tampered;
  if (typeof value.error === 'string' && value.error !== '') status.error = value.error;
  if (typeof value.converter_error === 'string' && value.converter_error !== '') status.converterError = value.converter_error;
  const s = value.stats;
  if (isObject(s)) {
    const n = (k: string): number => int(s[k]) ?? 0;
    status.stats = {
      lines: n('lines'), events: n('events'), bytes: n('bytes'), dropped: n('dropped'), lost: n('lost'), unparsed: n('unparsed'),
      marker: s.marker === true,
    };
  }
  return status;
}
