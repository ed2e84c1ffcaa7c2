// Host-side `fetch`: download a source archive into the cache dir under its checksum, verified while it
// streams. The sandbox only ever reads the cached file, so builds never need the network.
//
// http(s) downloads follow melange's fetch inputs: `timeout` is how long an attempt may go without progress
// (connecting or reading, as wget -T), `dns-timeout` bounds the host name lookup, and `retry-limit` is the
// number of attempts in all (as wget --tries), with a growing wait between them. An attempt that broke off
// part way resumes with a Range request when the server allows it. Requests go through Node's fetch (undici):
// redirects, TLS and connection handling are its; idle timeouts, retries and resuming are ours.
import { createHash, type Hash, randomBytes } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BuilderError, errorMessage } from '../errors.ts';
import type { FetchSourcePlan } from '../pipeline/plan.ts';

export interface FetchOptions {
  /** The host cache dir (mounted at /var/cache/melange in the sandbox). */
  cacheDir: string;
  /** What relative local paths are resolved against (the recipe's folder). */
  baseDir: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** The wait between http(s) attempts: `initialMs`, doubling for each further one, at most `maxMs`. */
  backoff?: { initialMs: number; maxMs: number };
}

export interface FetchResult {
  /** The cache file (for an unverified download, the link named by the plan's cacheName). */
  path: string;
  /** True when the file was already cached and nothing was downloaded. */
  cached: boolean;
  bytes: number;
  /** SHA-256 of the file, when known without reading it again (always after a download). */
  sha256?: string;
}

/** Raised when a download does not match its expected checksum (the download is deleted). */
export class ChecksumMismatchError extends BuilderError {
  override name = 'ChecksumMismatchError';
}

/** Waits between attempts when the options do not say: 1 s, 2 s, 4 s, … up to 30 s. */
export const DEFAULT_BACKOFF = { initialMs: 1000, maxMs: 30_000 };
const URL_SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):/;
/** Socket and lookup errors worth another attempt; anything else (a name that does not exist, …) is final. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'ENETDOWN',
  'EHOSTUNREACH', 'EHOSTDOWN', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET',
]);

type Algorithm = 'sha256' | 'sha512';

/** Fetch `source` into `<cacheDir>/<cacheName>` unless it is there already (always, for an unverified one). */
export async function fetchToCache(source: FetchSourcePlan, options: FetchOptions): Promise<FetchResult> {
  const target = join(options.cacheDir, source.cacheName);
  if (!source.unverified) {
    const existing = await stat(target).catch(() => undefined);
    if (existing?.isFile()) {
      options.log?.(`fetch: ${source.uri}: using ${source.cacheName} from the cache`);
      return { path: target, cached: true, bytes: existing.size, ...(source.sha256 ? { sha256: source.sha256 } : {}) };
    }
  }
  await mkdir(options.cacheDir, { recursive: true });
  const temp = join(options.cacheDir, `.fetch.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const where = `${source.source}: fetch ${source.uri}`;
  const expected: [Algorithm, string][] = [];
  if (source.sha256) expected.push(['sha256', source.sha256.toLowerCase()]);
  if (source.sha512) expected.push(['sha512', source.sha512.toLowerCase()]);
  const download = new Download(temp, expected.some(([a]) => a === 'sha512') ? ['sha256', 'sha512'] : ['sha256']);
  try {
    await receive(source, download, options, where);
    const sums = download.digests();
    for (const [algorithm, want] of expected) {
      if (sums[algorithm] !== want) {
        throw new ChecksumMismatchError(`${where}: ${algorithm} mismatch: expected ${want}, got ${sums[algorithm]} (the download was deleted)`);
      }
    }
    const sha256 = sums.sha256!;
    if (!source.unverified) {
      await mkdir(dirname(target), { recursive: true });
      await rename(temp, target);
      options.log?.(`fetch: ${source.uri}: ${download.bytes} bytes, ${expected.map(([a]) => a).join(' and ')} verified`);
      return { path: target, cached: false, bytes: download.bytes, sha256 };
    }
    // Content-addressed like every other download; the plan's name for it is a link to that entry.
    const content = join(options.cacheDir, `sha256:${sha256}`);
    if ((await stat(content).catch(() => undefined))?.isFile()) await rm(temp, { force: true });
    else await rename(temp, content);
    await linkAtomically(content, target);
    options.log?.(
      `fetch: ${source.uri}: ${download.bytes} bytes, NOT verified (expected-none: no checksum was given); cached as sha256:${sha256}`,
    );
    return { path: target, cached: false, bytes: download.bytes, sha256 };
  } catch (err) {
    await rm(temp, { force: true });
    if (err instanceof BuilderError) throw err;
    if (options.signal?.aborted) throw new BuilderError(`${where}: interrupted`, { cause: err });
    throw new BuilderError(`${where}: ${errorMessage(err)}`, { cause: err });
  }
}

/** Streams the source into the download's temp file, by its scheme. */
async function receive(source: FetchSourcePlan, download: Download, options: FetchOptions, where: string): Promise<void> {
  const scheme = URL_SCHEME.exec(source.uri)?.[1]?.toLowerCase();
  if (scheme === 'http' || scheme === 'https') return receiveHttp(source, download, options, where);
  let file: string;
  if (scheme === 'file') {
    try {
      file = fileURLToPath(source.uri);
    } catch (err) {
      throw new BuilderError(`${where}: ${errorMessage(err)}`);
    }
  } else if (scheme === undefined) {
    file = resolve(options.baseDir, source.uri);
  } else {
    throw new BuilderError(`${where}: unsupported URI scheme "${scheme}:" (http, https and file URIs and local paths work)`);
  }
  const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new BuilderError(`${where}: ${file}: ${err.code === 'ENOENT' ? 'no such file' : (err.code ?? err.message)}`);
  });
  if (!info.isFile()) throw new BuilderError(`${where}: ${file} is not a file`);
  await download.write(createReadStream(file), false, options.signal);
}

// ---------------------------------------------------------------------------------------------------------
// The file being downloaded, hashed as it is written

class Download {
  bytes = 0;
  /** A strong validator of the response being received (ETag or Last-Modified), for resuming it. */
  validator: string | undefined;
  private hashes: Map<Algorithm, Hash> = new Map();
  private readonly path: string;
  private readonly algorithms: Algorithm[];

  constructor(path: string, algorithms: Algorithm[]) {
    this.path = path;
    this.algorithms = algorithms;
    this.restart();
  }

  restart(): void {
    this.bytes = 0;
    this.validator = undefined;
    this.hashes = new Map(this.algorithms.map((a) => [a, createHash(a)]));
  }

  /** Whether what is on disk is exactly what was hashed, so a Range request can continue it. */
  async resumable(): Promise<boolean> {
    if (this.bytes === 0 || this.validator === undefined) return false;
    // A write the failed pipeline dropped would leave the file shorter than the hashes say.
    return (await stat(this.path).catch(() => undefined))?.size === this.bytes;
  }

  /**
   * Appends (or writes) `input` to the file. A chunk counts, and is hashed, only once it is on disk, so that
   * after a failure `bytes` and the hashes describe exactly what the file holds and a resume can continue it.
   */
  async write(input: Readable, append: boolean, signal: AbortSignal | undefined): Promise<void> {
    const file = await open(this.path, append ? 'a' : 'w');
    let pending: Promise<void> = Promise.resolve();
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        pending = file.write(chunk).then(() => {
          this.bytes += chunk.length;
          for (const h of this.hashes.values()) h.update(chunk);
        });
        pending.then(() => done(), done);
      },
      destroy: (err, done) => {
        // A write under way when the transfer fails still finishes (and is counted) before the file closes.
        pending
          .catch(() => undefined)
          .then(() => file.close())
          .then(
            () => done(err),
            (closeErr: Error) => done(err ?? closeErr),
          );
      },
    });
    await pipeline(input, sink, { signal });
  }

  digests(): Partial<Record<Algorithm, string>> {
    const out: Partial<Record<Algorithm, string>> = {};
    for (const [a, h] of this.hashes) out[a] = h.digest('hex');
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------
// http(s)

/** Why one attempt failed, and whether another one may do better. */
class AttemptError extends Error {
  readonly retryable: boolean;
  /** Seconds the server asked to wait (Retry-After). */
  readonly retryAfter: number | undefined;
  constructor(message: string, retryable: boolean, retryAfter?: number) {
    super(message);
    this.retryable = retryable;
    this.retryAfter = retryAfter;
  }
}

async function receiveHttp(source: FetchSourcePlan, download: Download, options: FetchOptions, where: string): Promise<void> {
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const attempts = Math.max(1, Math.floor(source.attempts));
  for (let attempt = 1; ; attempt++) {
    try {
      await httpAttempt(source, download, options);
      return;
    } catch (err) {
      if (options.signal?.aborted) throw new BuilderError(`${where}: interrupted`, { cause: err });
      const failure = classify(err);
      const after = attempt > 1 ? ` (after ${attempt} attempts)` : '';
      if (!failure.retryable || attempt >= attempts) throw new BuilderError(`${where}: ${failure.message}${after}`, { cause: err });
      const computed = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (attempt - 1));
      const wait = Math.min(backoff.maxMs, Math.max(computed, (failure.retryAfter ?? 0) * 1000));
      options.log?.(
        `fetch: ${source.uri}: attempt ${attempt} of ${attempts} failed (${failure.message}); retrying in ${formatSeconds(wait / 1000)}`,
      );
      try {
        await sleep(wait, undefined, { signal: options.signal });
      } catch (cause) {
        throw new BuilderError(`${where}: interrupted`, { cause });
      }
    }
  }
}

function classify(err: unknown): AttemptError {
  if (err instanceof AttemptError) return err;
  // Node's fetch reports "fetch failed" / "terminated" with the socket or lookup error as the cause.
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : undefined;
  const code = (err as NodeJS.ErrnoException).code ?? (cause as NodeJS.ErrnoException | undefined)?.code;
  const message = cause ? `${errorMessage(err)}: ${cause.message}` : errorMessage(err);
  if (code === 'ENOTFOUND') return new AttemptError(`cannot resolve the host name (${message})`, false);
  if (code !== undefined && TRANSIENT_CODES.has(code)) return new AttemptError(message, true);
  if (/^(terminated|aborted|socket hang up)$/.test(errorMessage(err))) return new AttemptError(`the connection was closed (${message})`, true);
  return new AttemptError(message, false);
}

/**
 * One attempt through Node's fetch (redirects followed by it, at most 20), then the body, continuing a
 * broken-off transfer when possible. `timeout` is enforced as idle time: a timer restarted by every chunk
 * aborts the request when nothing arrives for that long.
 */
async function httpAttempt(source: FetchSourcePlan, download: Download, options: FetchOptions): Promise<void> {
  const resume = await download.resumable();
  if (!resume) download.restart();
  const headers: Record<string, string> = { 'user-agent': 'builder', accept: '*/*' };
  if (resume) {
    headers.range = `bytes=${download.bytes}-`;
    headers['if-range'] = download.validator!;
    options.log?.(`fetch: ${source.uri}: resuming at byte ${download.bytes}`);
  }
  const url = new URL(source.uri);
  await lookupWithin(url.hostname, source.dnsTimeout * 1000);
  const idle = new IdleTimer(source.timeout);
  const signal = options.signal ? AbortSignal.any([options.signal, idle.signal]) : idle.signal;
  try {
    let res: Response;
    try {
      res = await fetch(url, { headers, redirect: 'follow', signal });
    } catch (err) {
      throw idle.failure ?? err;
    }
    const status = res.status;
    const cancel = (): Promise<void> => res.body?.cancel().catch(() => undefined) ?? Promise.resolve();
    if (status >= 400) {
      await cancel();
      const retryable = status === 408 || status === 425 || status === 429 || status >= 500;
      const retryAfter = /^\d+$/.test(res.headers.get('retry-after') ?? '') ? Number(res.headers.get('retry-after')) : undefined;
      throw new AttemptError(`HTTP ${status} ${res.statusText}`.trimEnd(), retryable, retryAfter);
    }
    let append = false;
    if (status === 206 && resume) {
      const range = res.headers.get('content-range');
      const start = /^bytes (\d+)-/.exec(range ?? '')?.[1];
      if (start === undefined || Number(start) !== download.bytes) {
        await cancel();
        download.restart();
        throw new AttemptError(`the server resumed at the wrong place (${range ?? 'no Content-Range'})`, true);
      }
      append = true;
    } else if (status === 200) {
      if (download.bytes > 0) download.restart();
      download.validator = strongValidator(res.headers);
    } else {
      await cancel();
      download.restart();
      throw new AttemptError(`unexpected HTTP ${status} ${res.statusText}`.trimEnd(), false);
    }
    const length = res.headers.get('content-length');
    const total = length !== null && /^\d+$/.test(length) ? download.bytes + Number(length) : undefined;
    if (res.body) {
      const web = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
      const body = Readable.from(
        (async function* () {
          for await (const chunk of web) {
            idle.restart();
            yield chunk as Buffer;
          }
        })(),
        { objectMode: false },
      );
      try {
        await download.write(body, append, options.signal);
      } catch (err) {
        throw idle.failure ?? err;
      }
    }
    if (total !== undefined && download.bytes !== total) {
      throw new AttemptError(`the connection closed after ${download.bytes} of ${total} bytes`, true);
    }
  } finally {
    idle.stop();
  }
}

/** What If-Range may carry: a strong ETag, else Last-Modified; undefined when the server does not do ranges. */
function strongValidator(headers: Headers): string | undefined {
  if (headers.get('accept-ranges') !== 'bytes') return undefined;
  const etag = headers.get('etag');
  if (etag && !etag.startsWith('W/')) return etag;
  return headers.get('last-modified') ?? undefined;
}

/** Aborts its signal when `seconds` pass without restart() (0: never), remembering that a timeout did it. */
class IdleTimer {
  readonly #controller = new AbortController();
  readonly #ms: number;
  readonly #seconds: number;
  #timer: NodeJS.Timeout | undefined;
  failure: AttemptError | undefined;

  constructor(seconds: number) {
    this.#seconds = seconds;
    this.#ms = seconds * 1000;
    this.restart();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  restart(): void {
    if (this.#ms <= 0 || this.failure) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.failure = new AttemptError(`timed out: nothing received for ${formatSeconds(this.#seconds)}`, true);
      this.#controller.abort(this.failure);
    }, this.#ms);
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

/**
 * Resolves the host name within `ms` (0: no limit), so a hanging resolver fails the attempt as `dns-timeout`
 * asks. Node's fetch takes no lookup function, so the name is resolved here first; fetch's own lookup then
 * finds it in the system resolver's cache.
 */
async function lookupWithin(hostname: string, ms: number): Promise<void> {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    if (ms > 0) {
      timer = setTimeout(
        () => reject(Object.assign(new Error(`looking up ${host} took longer than ${formatSeconds(ms / 1000)} (dns-timeout)`), { code: 'EAI_AGAIN' })),
        ms,
      );
    }
  });
  try {
    await Promise.race([dnsLookup(host), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function formatSeconds(seconds: number): string {
  return `${Number(seconds.toFixed(3))} s`;
}

/** Makes `linkPath` a hard link to `file`, replacing what was there in one step. */
async function linkAtomically(file: string, linkPath: string): Promise<void> {
  await mkdir(dirname(linkPath), { recursive: true });
  const temp = join(dirname(linkPath), `.link.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await link(file, temp).catch(async (err: NodeJS.ErrnoException) => {
      // A file system without hard links gets a copy: the entry is still a regular file the sandbox can read.
      if (err.code !== 'EPERM' && err.code !== 'ENOTSUP' && err.code !== 'EOPNOTSUPP' && err.code !== 'EXDEV') throw err;
      await copyFile(file, temp);
    });
    await rename(temp, linkPath);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
