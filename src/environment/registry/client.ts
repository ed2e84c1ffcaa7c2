// The OCI distribution API as far as pulling needs it: manifests and blobs of one repository, with the bearer
// token handshake (a 401 names the token service in WWW-Authenticate; an anonymous token for
// `repository:REPO:pull` is fetched from it and sent on every later request). Transient failures (network
// errors, 5xx, 429) are retried a few times; everything else fails at once with the reference and the status.
import { BuilderError, errorMessage } from '../../errors.ts';
import { type ImageReference, registryBaseUrl } from './reference.ts';

/** A registry answered with an error, or could not be reached. */
export class RegistryError extends BuilderError {
  override name = 'RegistryError';
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
  }
}

export interface RegistryClientOptions {
  signal?: AbortSignal;
  /** Attempts per request for transient failures (default 3). */
  attempts?: number;
  /** Pause before the second attempt, doubled after each (default 500 ms). */
  backoffMs?: number;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of (m[2] ?? '').matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[(p[1] ?? '').toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: (m[1] ?? '').toLowerCase(), params };
}

export class RegistryClient {
  readonly ref: ImageReference;
  readonly #base: string;
  readonly #options: RegistryClientOptions;
  #token: string | undefined;

  constructor(ref: ImageReference, options: RegistryClientOptions = {}) {
    this.ref = ref;
    this.#base = registryBaseUrl(ref);
    this.#options = options;
  }

  /** GET `/v2/REPO/KIND/ID`, following the token handshake once. The body is left to the caller. */
  async get(kind: 'manifests' | 'blobs', id: string, accept: readonly string[] = []): Promise<Response> {
    const url = `${this.#base}/v2/${this.ref.repository}/${kind}/${id}`;
    const what = `${this.ref.text}: ${kind === 'manifests' ? 'manifest' : 'blob'} ${id}`;
    let response = await this.#send(url, accept, what);
    if (response.status === 401 && this.#token === undefined) {
      const header = response.headers.get('www-authenticate') ?? '';
      await response.body?.cancel();
      this.#token = await this.#fetchToken(header, what);
      response = await this.#send(url, accept, what);
    }
    if (response.ok) return response;
    const detail = await errorDetail(response);
    await response.body?.cancel().catch(() => undefined);
    throw new RegistryError(`${what}: ${describeStatus(response.status)}${detail ? ` (${detail})` : ''}`, response.status);
  }

  async #send(url: string, accept: readonly string[], what: string): Promise<Response> {
    const attempts = this.#options.attempts ?? 3;
    let pause = this.#options.backoffMs ?? 500;
    for (let attempt = 1; ; attempt++) {
      const headers: Record<string, string> = {};
      if (accept.length > 0) headers.accept = accept.join(', ');
      if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
      let response: Response;
      try {
        response = await fetch(url, { headers, redirect: 'follow', ...(this.#options.signal ? { signal: this.#options.signal } : {}) });
      } catch (err) {
        if (this.#options.signal?.aborted) throw err;
        if (attempt >= attempts) {
          throw new RegistryError(`${what}: cannot reach ${this.#base}: ${causeMessage(err)}`, undefined, { cause: err });
        }
        await sleep(pause, this.#options.signal);
        pause *= 2;
        continue;
      }
      const transient = response.status >= 500 || response.status === 429;
      if (!transient || attempt >= attempts) return response;
      await response.body?.cancel().catch(() => undefined);
      await sleep(pause, this.#options.signal);
      pause *= 2;
    }
  }

  async #fetchToken(header: string, what: string): Promise<string> {
    const challenge = parseChallenge(header);
    if (challenge?.scheme !== 'bearer' || !challenge.params.realm) {
      throw new RegistryError(
        `${what}: the registry requires authentication${challenge ? ` (${challenge.scheme})` : ''} and offers no bearer token service; only anonymous pulls are supported`,
        401,
      );
    }
    const url = new URL(challenge.params.realm);
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    url.searchParams.set('scope', challenge.params.scope ?? `repository:${this.ref.repository}:pull`);
    let response: Response;
    try {
      response = await fetch(url, this.#options.signal ? { signal: this.#options.signal } : {});
    } catch (err) {
      throw new RegistryError(`${what}: cannot reach the token service ${url.origin}: ${causeMessage(err)}`, undefined, { cause: err });
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      throw new RegistryError(`${what}: the token service ${url.origin} refused an anonymous pull token: ${describeStatus(response.status)}`, response.status);
    }
    const body = (await response.json().catch(() => undefined)) as { token?: unknown; access_token?: unknown } | undefined;
    const token = body?.token ?? body?.access_token;
    if (typeof token !== 'string' || token === '') throw new RegistryError(`${what}: the token service ${url.origin} answered without a token`);
    return token;
  }
}

function describeStatus(status: number): string {
  switch (status) {
    case 401:
      return 'HTTP 401 unauthorized (the token did not grant pull access)';
    case 403:
      return 'HTTP 403 forbidden';
    case 404:
      return 'HTTP 404 not found (check the repository name and tag)';
    case 429:
      return 'HTTP 429 too many requests';
    default:
      return status >= 500 ? `HTTP ${status} registry server error` : `HTTP ${status}`;
  }
}

/** The first error code and message of a distribution-API error body, if there is one. */
async function errorDetail(response: Response): Promise<string> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    const first = body.errors?.[0];
    if (first) return [first.code, first.message].filter((x) => typeof x === 'string' && x !== '').join(': ');
  } catch {
    // not JSON: nothing to add
  }
  return '';
}

/** undici hides the system error (ECONNREFUSED, ENOTFOUND) in `cause`. */
function causeMessage(err: unknown): string {
  const cause = err instanceof Error ? err.cause : undefined;
  return cause instanceof Error ? `${errorMessage(err)}: ${cause.message}` : errorMessage(err);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    }, { once: true });
  });
}
