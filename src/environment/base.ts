// Base references: what a root starts from before APK packages are layered on top.
//
//   debian:SUITE[:PKG,PKG…][@MIRROR]   a Debian root made by mmdebstrap (variant `essential` + the packages)
//   dir:PATH                          an existing root filesystem directory, copied, never modified
//   oci:PATH                          a `docker save` or OCI-layout tarball; layers applied in order
//   oci:REGISTRY/REPO:TAG|@sha256:…   an image pulled from a registry (src/environment/registry/)
//   host                              no root at all: the host provider
//
// A base is given by `--base` or, so that recipes stay plain melange YAML, as an entry of
// `environment.contents.repositories` (a string list melange accepts as is).
import { isAbsolute, resolve } from 'node:path';
import { BuilderError, UsageError } from '../errors.ts';
import { type ImageReference, parseImageReference } from './registry/reference.ts';

export const DEFAULT_DEBIAN_MIRROR = 'http://deb.debian.org/debian';

export type BaseRef =
  | { kind: 'none' }
  | { kind: 'host' }
  | { kind: 'debian'; suite: string; packages: string[]; mirror: string }
  | { kind: 'dir'; path: string }
  | { kind: 'oci'; path: string }
  | { kind: 'oci-registry'; ref: ImageReference };

const SUITE = /^[a-z][a-z0-9.-]*$/;
const DEBIAN_PACKAGE = /^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?$/;
const BASE_PREFIX = /^(debian|dir|oci):/;

/** Whether a `repositories` entry names a base rather than an APK repository. */
export function isBaseEntry(entry: string): boolean {
  return BASE_PREFIX.test(entry.trim());
}

/** A flag's mistake is a usage error (exit 2); a recipe's is an ordinary failure naming the key. */
function problem(where: string, message: string): BuilderError {
  return where.startsWith('--') ? new UsageError(`${where}: ${message}`) : new BuilderError(`${where}: ${message}`);
}

/**
 * Parses a base reference. `where` names its origin (`--base`, `environment.contents.repositories[2]`) in
 * errors; relative paths are resolved against `baseDir`.
 */
export function parseBaseRef(text: string, baseDir: string, where: string): BaseRef {
  const ref = text.trim();
  if (ref === '' || ref === 'none') return { kind: 'none' };
  if (ref === 'host') return { kind: 'host' };
  const colon = ref.indexOf(':');
  const kind = colon < 0 ? ref : ref.slice(0, colon);
  const rest = colon < 0 ? '' : ref.slice(colon + 1);
  switch (kind) {
    case 'debian':
      return parseDebian(rest, where);
    case 'dir':
    case 'oci': {
      if (rest === '') throw problem(where, `"${ref}" needs a path, e.g. ${kind}:./rootfs`);
      const image = kind === 'oci' ? parseImageReference(rest) : undefined;
      if (image) return { kind: 'oci-registry', ref: image };
      return { kind, path: isAbsolute(rest) ? rest : resolve(baseDir, rest) };
    }
    default:
      throw problem(where, `unknown base "${ref}" (expected debian:SUITE[:PKG,…][@MIRROR], dir:PATH, oci:PATH, oci:REGISTRY/REPO:TAG or host)`);
  }
}

function parseDebian(rest: string, where: string): BaseRef {
  const at = rest.indexOf('@');
  const spec = at < 0 ? rest : rest.slice(0, at);
  const mirror = at < 0 ? DEFAULT_DEBIAN_MIRROR : rest.slice(at + 1);
  const [suite = '', list, ...extra] = spec.split(':');
  if (!SUITE.test(suite) || extra.length > 0) {
    throw problem(where, `"debian:${rest}" is not debian:SUITE[:PKG,PKG…][@MIRROR] (e.g. debian:bookworm:gcc,make)`);
  }
  const packages = (list ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
  const bad = packages.filter((p) => !DEBIAN_PACKAGE.test(p));
  if (bad.length > 0) throw problem(where, `not Debian package names: ${bad.join(', ')}`);
  if (!/^(https?|file):\/\/\S+$/.test(mirror)) {
    throw problem(where, `Debian mirror "${mirror}" must be an http://, https:// or file:// URL`);
  }
  return { kind: 'debian', suite, packages: [...new Set(packages)].sort(), mirror };
}

/** One line for logs. */
export function describeBase(base: BaseRef): string {
  switch (base.kind) {
    case 'none':
      return 'empty base';
    case 'host':
      return 'host';
    case 'debian':
      return `debian:${base.suite}${base.packages.length > 0 ? `:${base.packages.join(',')}` : ''}`;
    case 'dir':
    case 'oci':
      return `${base.kind}:${base.path}`;
    case 'oci-registry':
      return `oci:${base.ref.text}`;
  }
}

export interface SplitRepositories {
  /** The base named by `--base`, else by a base entry of the recipe's repositories. */
  base: BaseRef;
  /** APK repositories only. */
  repositories: string[];
}

/**
 * Separates base entries from APK repositories. `--base` wins over a recipe entry; two base entries in the
 * recipe are an error naming both.
 */
export function splitRepositories(repositories: readonly string[], cliBase: string | undefined, baseDir: string): SplitRepositories {
  const apk: string[] = [];
  const bases: { entry: string; index: number }[] = [];
  repositories.forEach((entry, index) => {
    if (isBaseEntry(entry)) bases.push({ entry, index });
    else apk.push(entry);
  });
  if (cliBase !== undefined) return { base: parseBaseRef(cliBase, baseDir, '--base'), repositories: apk };
  if (bases.length > 1) {
    throw new BuilderError(
      `environment.contents.repositories: more than one base (${bases.map((b) => `[${b.index}] ${b.entry}`).join(', ')}); keep one`,
    );
  }
  const first = bases[0];
  const base = first ? parseBaseRef(first.entry, baseDir, `environment.contents.repositories[${first.index}]`) : { kind: 'none' as const };
  return { base, repositories: apk };
}
