// Image references for registry bases: `REGISTRY[:PORT]/REPO[/…]:TAG` or `…@sha256:HEX` (both may be given;
// the digest then wins, as in docker). A registry part is required and must look like a host (a dot, a port,
// or `localhost`), so that `oci:PATH` for a local tarball keeps meaning a path.

export interface ImageReference {
  /** `host[:port]` as written. */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
  /** The reference as written, for errors and logs. */
  text: string;
}

const HOST = /^(localhost|\[[0-9a-fA-F:]+\]|[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*)(:\d{1,5})?$/;
const REPOSITORY = /^[a-z0-9]+([._-]+[a-z0-9]+)*(\/[a-z0-9]+([._-]+[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** The reference in `text`, or undefined when `text` is not a registry reference (it is then a path). */
export function parseImageReference(text: string): ImageReference | undefined {
  const slash = text.indexOf('/');
  if (slash <= 0) return undefined;
  const registry = text.slice(0, slash);
  if (!HOST.test(registry) || !(registry.includes('.') || registry.includes(':') || registry.startsWith('localhost'))) return undefined;
  let rest = text.slice(slash + 1);
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) return undefined;
  }
  if ((tag === undefined && digest === undefined) || !REPOSITORY.test(rest)) return undefined;
  return { registry, repository: rest, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}), text };
}

/** What the manifest endpoint is asked for: the digest when pinned, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/**
 * Loopback registries are spoken to over plain HTTP (as docker allows for localhost); every other registry
 * over HTTPS.
 */
export function registryBaseUrl(ref: ImageReference): string {
  // Docker Hub is named docker.io in references but serves the API from registry-1.docker.io.
  if (ref.registry === 'docker.io' || ref.registry === 'index.docker.io') return 'https://registry-1.docker.io';
  const host = ref.registry.replace(/:\d+$/, '');
  const loopback = host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]';
  return `${loopback ? 'http' : 'https'}://${ref.registry}`;
}
