// Reading the hook's NDJSON as it streams in: complete lines are parsed as they arrive, at most `maxBytes` are
// taken (the rest is reported as truncated, never silently dropped), and lines that are not events are
// skipped and counted, with a few kept as samples for the report.
import { type BootClock, type ObservedEvent, parseEventLine } from './events.ts';

/** The most a build's events may take; more is reported as truncated. */
export const MAX_EVENTS_BYTES = 50 * 1024 * 1024;
/** No event is anywhere near this long; a longer line is malformed rather than a reason to hold memory. */
const MAX_LINE_BYTES = 1024 * 1024;
const SAMPLES = 3;
const SAMPLE_CHARS = 200;

export interface EventReadResult {
  events: ObservedEvent[];
  /** Lines read (complete lines within the limit, empty ones excluded). */
  lines: number;
  /** Lines skipped because they were not valid events. */
  malformed: number;
  /** The first few malformed lines, shortened. */
  malformedSamples: string[];
  /** Bytes taken (at most maxBytes). */
  bytes: number;
  /** True when the input went on past maxBytes. */
  truncated: boolean;
}

export interface EventReaderOptions {
  clock: BootClock;
  maxBytes?: number;
}

export class EventLineReader {
  readonly #clock: BootClock;
  readonly #maxBytes: number;
  readonly #events: ObservedEvent[] = [];
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #overlong = false;
  #bytes = 0;
  #lines = 0;
  #malformed = 0;
  readonly #samples: string[] = [];
  #truncated = false;

  constructor(options: EventReaderOptions) {
    this.#clock = options.clock;
    this.#maxBytes = options.maxBytes ?? MAX_EVENTS_BYTES;
  }

  /** Takes a chunk; false once the limit is reached (what follows is only noted as truncation). */
  push(chunk: Buffer): boolean {
    if (this.#truncated) return false;
    const room = this.#maxBytes - this.#bytes;
    let data = chunk;
    if (data.length > room) {
      data = data.subarray(0, room);
      this.#truncated = true;
    }
    this.#bytes += data.length;
    let start = 0;
    for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, start)) {
      this.#append(data.subarray(start, nl));
      this.#line();
      start = nl + 1;
    }
    if (start < data.length) this.#append(data.subarray(start));
    return !this.#truncated;
  }

  #append(part: Buffer): void {
    if (this.#overlong) return;
    if (this.#pendingBytes + part.length > MAX_LINE_BYTES) {
      this.#overlong = true;
      this.#pending = [];
      this.#pendingBytes = 0;
      return;
    }
    // Copied: the caller's buffer may be reused once push() returns.
    this.#pending.push(Buffer.from(part));
    this.#pendingBytes += part.length;
  }

  #line(): void {
    const overlong = this.#overlong;
    const text = overlong ? '' : Buffer.concat(this.#pending, this.#pendingBytes).toString('utf8');
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#overlong = false;
    if (!overlong && text.trim() === '') return;
    this.#lines++;
    const event = overlong ? null : parseEventLine(text, this.#clock);
    if (event) {
      this.#events.push(event);
      return;
    }
    this.#malformed++;
    if (this.#samples.length < SAMPLES) {
      this.#samples.push(overlong ? `(a line longer than ${MAX_LINE_BYTES} bytes)` : text.length > SAMPLE_CHARS ? `${text.slice(0, SAMPLE_CHARS)}…` : text);
    }
  }

  /** Marks that more input existed than was pushed (e.g. the sender stopped at maxBytes + 1). */
  markTruncated(): void {
    this.#truncated = true;
  }

  /**
   * The result. A last line without a newline counts as a line when the input ended there, and is dropped
   * when the input was cut at the limit (it is incomplete by construction).
   */
  finish(): EventReadResult {
    if (!this.#truncated && (this.#pendingBytes > 0 || this.#overlong)) this.#line();
    this.#pending = [];
    this.#pendingBytes = 0;
    return {
      events: this.#events,
      lines: this.#lines,
      malformed: this.#malformed,
      malformedSamples: [...this.#samples],
      bytes: this.#bytes,
      truncated: this.#truncated,
    };
  }
}

/** Reads a whole stream of NDJSON events, taking at most maxBytes. */
export async function readEventStream(source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, options: EventReaderOptions): Promise<EventReadResult> {
  const reader = new EventLineReader(options);
  for await (const chunk of source) {
    if (!reader.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)) break;
  }
  return reader.finish();
}
