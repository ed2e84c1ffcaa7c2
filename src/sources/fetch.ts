// Host-side `fetch`: download a source archive into the cache dir under its checksum, verified while it
// streams. The sandbox only ever reads the cached file, so builds never need the network.
//
// http(s) downloads follow melange's fetch inputs: `timeout` is how long an attempt may go without progress
// (connecting or reading, as wget -T), `dns-timeout` bounds the host name lookup, and `retry-limit` is the
// number of attempts in all (as wget --tries), with a growing wait between them. An attempt that broke off
// part way resumes with a Range request when the server allows it.
import { createHash, type Hash, randomBytes } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { type ClientRequest, get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { dirname, join, resolve } from 'node:path';
import { type Readable, Writable } from 'node:stream';
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
const MAX_REDIRECTS = 20;
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
  const code = (err as NodeJS.ErrnoException).code;
  const message = errorMessage(err);
  if (code === 'ENOTFOUND') return new AttemptError(`cannot resolve the host name (${message})`, false);
  if (code !== undefined && TRANSIENT_CODES.has(code)) return new AttemptError(message, true);
  if (message === 'aborted' || message === 'socket hang up') return new AttemptError(`the connection was closed (${message})`, true);
  return new AttemptError(message, false);
}

/** One attempt: follow redirects, then receive the body, continuing a broken-off transfer when possible. */
async function httpAttempt(source: FetchSourcePlan, download: Download, options: FetchOptions): Promise<void> {
  const resume = await download.resumable();
  if (!resume) download.restart();
  const headers: Record<string, string> = { 'user-agent': 'builder', accept: '*/*' };
  if (resume) {
    headers.range = `bytes=${download.bytes}-`;
    headers['if-range'] = download.validator!;
    options.log?.(`fetch: ${source.uri}: resuming at byte ${download.bytes}`);
  }
  const connection = new Connection(source, options);
  try {
    const res = await connection.open(source.uri, headers);
    const status = res.statusCode ?? 0;
    if (status >= 400) {
      res.resume();
      const retryable = status === 408 || status === 425 || status === 429 || status >= 500;
      const retryAfter = /^\d+$/.test(String(res.headers['retry-after'] ?? '')) ? Number(res.headers['retry-after']) : undefined;
      throw new AttemptError(`HTTP ${status} ${res.statusMessage ?? ''}`.trimEnd(), retryable, retryAfter);
    }
    let append = false;
    if (status === 206 && resume) {
      const start = /^bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''))?.[1];
      if (start === undefined || Number(start) !== download.bytes) {
        res.resume();
        download.restart();
        throw new AttemptError(`the server resumed at the wrong place (${String(res.headers['content-range'] ?? 'no Content-Range')})`, true);
      }
      append = true;
    } else if (status === 200) {
      if (download.bytes > 0) download.restart();
      download.validator = strongValidator(res);
    } else {
      res.resume();
      download.restart();
      throw new AttemptError(`unexpected HTTP ${status} ${res.statusMessage ?? ''}`.trimEnd(), false);
    }
    const length = res.headers['content-length'];
    const total = length !== undefined && /^\d+$/.test(length) ? download.bytes + Number(length) : undefined;
    await connection.body(download.write(res, append, options.signal));
    if (total !== undefined && download.bytes !== total) {
      throw new AttemptError(`the connection closed after ${download.bytes} of ${total} bytes`, true);
    }
  } finally {
    connection.close();
  }
}

/** What If-Range may carry: a strong ETag, else Last-Modified; undefined when the server does not do ranges. */
function strongValidator(res: IncomingMessage): string | undefined {
  if (res.headers['accept-ranges'] !== 'bytes') return undefined;
  const etag = res.headers.etag;
  if (etag && !etag.startsWith('W/')) return etag;
  return res.headers['last-modified'];
}

/**
 * The request of one attempt (and its redirects), with the timeouts: `timeout` seconds without progress
 * fail it, and so does a host name lookup longer than `dnsTimeout`.
 */
class Connection {
  private request: ClientRequest | undefined;
  /** Set when a timeout (rather than the peer) ended the request: the stream errors only say "aborted". */
  private failure: AttemptError | undefined;
  private readonly source: FetchSourcePlan;
  private readonly options: FetchOptions;

  constructor(source: FetchSourcePlan, options: FetchOptions) {
    this.source = source;
    this.options = options;
  }

  async open(uri: string, headers: Record<string, string>): Promise<IncomingMessage> {
    let url = new URL(uri);
    for (let hop = 0; ; hop++) {
      const res = await this.get(url, headers);
      const location = res.headers.location;
      if (![301, 302, 303, 307, 308].includes(res.statusCode ?? 0) || !location) return res;
      res.resume();
      this.close();
      if (hop >= MAX_REDIRECTS) throw new AttemptError(`more than ${MAX_REDIRECTS} redirects`, false);
      url = new URL(location, url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new AttemptError(`redirected to an unsupported URI scheme "${url.protocol}" (${url.href})`, false);
      }
    }
  }

  /** Waits for the body to be received, reporting a timeout as such. */
  async body(receiving: Promise<void>): Promise<void> {
    try {
      await receiving;
    } catch (err) {
      throw this.failure ?? err;
    }
  }

  close(): void {
    this.request?.destroy();
    this.request = undefined;
  }

  private get(url: URL, headers: Record<string, string>): Promise<IncomingMessage> {
    const timeoutMs = this.source.timeout * 1000;
    const get = url.protocol === 'https:' ? httpsGet : httpGet;
    return new Promise((resolveResponse, reject) => {
      const req = get(url, {
        headers,
        // A connection per request: nothing lingers in a shared pool after a failed attempt.
        agent: false,
        lookup: lookupWithin(this.source.dnsTimeout * 1000),
        ...(this.options.signal ? { signal: this.options.signal } : {}),
      });
      this.request = req;
      if (timeoutMs > 0) {
        req.setTimeout(timeoutMs, () => {
          this.failure = new AttemptError(`timed out: nothing received for ${formatSeconds(this.source.timeout)}`, true);
          req.destroy(this.failure);
        });
      }
      req.once('response', resolveResponse);
      // Errors after the response (a timeout while reading) reach the body stream; only the first one counts.
      req.on('error', (err) => reject(this.failure ?? err));
    });
  }
}

/** dns.lookup that gives up after `ms` (0: never). */
function lookupWithin(ms: number) {
  return (
    hostname: string,
    options: LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    let settled = false;
    const timer =
      ms > 0
        ? setTimeout(() => {
            settled = true;
            callback(Object.assign(new Error(`looking up ${hostname} took longer than ${formatSeconds(ms / 1000)} (dns-timeout)`), { code: 'EAI_AGAIN' }), '');
          }, ms)
        : undefined;
    dnsLookup(hostname, options, (err, address, family) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      callback(err, address, family);
    });
  };
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
