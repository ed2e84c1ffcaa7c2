// Retrieval from a VM over its control channel, after the last step and before the VM is powered off:
// look for the sentinel (no sentinel: this initramfs has no hook, and that is said, not failed), stop the hook
// (it drains the kernel's buffers and prints its status), then stream the events file in, at most 50 MiB.
import { ObservabilityError, parseHookStatus, wallClock } from './events.ts';
import { DEFAULT_SENTINEL, type Sentinel, SENTINEL_PATH } from './guest-files.ts';
import { EventLineReader, MAX_EVENTS_BYTES } from './ndjson.ts';
import type { ImplicitDestination } from './policy.ts';
import type { ObservabilityResult } from './recording.ts';

/** The part of a VM runner's control channel retrieval needs (QemuRunner.control has this shape). */
export interface GuestChannel {
  control(
    argv: string[],
    options?: { onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void; maxOutputBytes?: number; signal?: AbortSignal },
  ): Promise<{ code: number | null; signal: string | null; stdout: Buffer; stderr: Buffer }>;
}

export interface CollectOptions {
  maxBytes?: number;
  signal?: AbortSignal;
  /** The host's clock (ms), for anchoring the VM's boot clock; default Date.now. */
  now?: () => number;
}

/** QEMU user-mode networking: the guest's DNS resolver, a service of the VM's own network. */
export const QEMU_USER_NET_RESOLVER: ImplicitDestination = {
  addr: '10.0.2.3',
  port: 53,
  protocols: ['udp', 'tcp'],
  why: "the VM's DNS resolver (answers with the host's resolver)",
};

/** Exit statuses of our retrieval scripts: "that file does not exist", "the hook's stop failed". */
const ABSENT = 44;
const HOOK_FAILED = 45;

function describeExit(r: { code: number | null; signal: string | null; stderr: Buffer }): string {
  const err = r.stderr.toString('utf8').trim();
  return err || (r.code !== null ? `exit code ${r.code}` : `signal ${r.signal ?? 'unknown'}`);
}

function parseSentinel(text: string): Sentinel {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ObservabilityError(`${SENTINEL_PATH} in the VM is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
  }
  const v = value as Partial<Record<keyof Sentinel, unknown>>;
  if (typeof value !== 'object' || value === null || v.version !== 1) {
    throw new ObservabilityError(`${SENTINEL_PATH} in the VM is not a version 1 observability sentinel`);
  }
  for (const key of ['hook', 'events', 'status'] as const) {
    if (typeof v[key] !== 'string' || !(v[key] as string).startsWith('/')) {
      throw new ObservabilityError(`${SENTINEL_PATH} in the VM has no absolute "${key}" path`);
    }
  }
  return { ...DEFAULT_SENTINEL, hook: v.hook as string, events: v.events as string, status: v.status as string };
}

/**
 * Stops the guest's hook and reads what it recorded. Null when the initramfs has no hook (no sentinel); an
 * ObservabilityError when it has one that did not leave an events file, or the file cannot be read.
 */
export async function collectGuestObservability(channel: GuestChannel, options: CollectOptions = {}): Promise<ObservabilityResult | null> {
  const now = options.now ?? Date.now;
  const maxBytes = options.maxBytes ?? MAX_EVENTS_BYTES;
  const { signal } = options;
  const sentinel = await channel.control(['sh', '-c', `[ -f "$1" ] || exit ${ABSENT}; exec cat -- "$1"`, 'sh', SENTINEL_PATH], { signal });
  if (sentinel.code === ABSENT) return null;
  if (sentinel.code !== 0) throw new ObservabilityError(`cannot read ${SENTINEL_PATH} in the VM: ${describeExit(sentinel)}`);
  const paths = parseSentinel(sentinel.stdout.toString('utf8'));

  // One round trip: stop the hook (it drains the kernel's buffers and prints its status as its last line), then
  // the size of the events file, both tagged on stderr, then the file itself on stdout, at most maxBytes + 1.
  // The clock is known once the status is in; events are stamped with wall-clock time after reading.
  const reader = new EventLineReader({ clock: { bootEpochMs: 0 }, maxBytes });
  const stderr: Buffer[] = [];
  let stderrBytes = 0;
  let statusArrivedAt: number | undefined;
  const read = await channel.control(
    [
      'sh',
      '-c',
      `status=$("$1" stop 2>&1) || { printf '%s\\n' "$status" >&2; exit ${HOOK_FAILED}; }
printf 'status %s\\n' "$(printf '%s\\n' "$status" | tail -n 1)" >&2
[ -f "$2" ] || exit ${ABSENT}
printf 'size %s\\n' "$(wc -c <"$2")" >&2 || exit 1
exec head -c "$3" -- "$2"`,
      'sh',
      paths.hook,
      paths.events,
      String(maxBytes + 1),
    ],
    {
      maxOutputBytes: 0,
      signal,
      onOutput: (stream, chunk) => {
        if (stream === 'stdout') reader.push(chunk);
        else {
          statusArrivedAt ??= now();
          if (stderrBytes < 64 * 1024) {
            stderr.push(Buffer.from(chunk));
            stderrBytes += chunk.length;
          }
        }
      },
    },
  );
  const errText = Buffer.concat(stderr).toString('utf8');
  const tagged = (tag: string): string | undefined =>
    errText
      .split('\n')
      .find((l) => l.startsWith(`${tag} `))
      ?.slice(tag.length + 1)
      .trim();
  if (read.code === HOOK_FAILED) throw new ObservabilityError(`the observability hook ${paths.hook} did not stop cleanly: ${errText.trim() || describeExit(read)}`);
  if (read.code === ABSENT) {
    throw new ObservabilityError(
      `the VM's initramfs has the observability hook (${SENTINEL_PATH}) but no events file ${paths.events}: the hook did not run (look for "observe:" lines in the console log)`,
    );
  }
  if (read.code !== 0) throw new ObservabilityError(`cannot read ${paths.events} in the VM: ${errText.trim() || describeExit(read)}`);
  const status = parseHookStatus(tagged('status') ?? '');
  // The status's uptime is read as the hook finishes, just before it is sent.
  const clock = { bootEpochMs: (statusArrivedAt ?? now()) - status.uptime * 1000 };
  const sizeLine = tagged('size') ?? '';
  const fileBytes = /^\d+$/.test(sizeLine) ? Number(sizeLine) : undefined;
  const events = reader.finish();
  for (const e of events.events) e.timestamp = wallClock(e.uptime, clock);
  return {
    source: 'qemu guest hook',
    status,
    events: events.events,
    retrieval: {
      bytes: events.bytes,
      fileBytes,
      truncated: events.truncated || (fileBytes !== undefined && fileBytes > events.bytes),
      lines: events.lines,
      malformed: events.malformed,
      malformedSamples: events.malformedSamples,
    },
    bootTime: new Date(clock.bootEpochMs).toISOString(),
    implicit: [QEMU_USER_NET_RESOLVER],
  };
}
