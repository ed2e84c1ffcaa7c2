// The one resolver of a path inside a root (a build root on disk, a package tree in memory, a sandbox's mount
// table): symlinks are followed the way a process chrooted there would see them — absolute targets start at
// the root, `..` at the root stays at the root (or is refused, for callers that must not leave it) — with
// a bound on the number of links. What a name is comes from the caller's `lookup`, so every view of a root
// shares these rules.

/** What a path names in the root being resolved in. */
export type RootNode = { kind: 'link'; target: string } | { kind: 'directory' } | { kind: 'other' } | { kind: 'missing' };

export interface ResolveOptions {
  /** Follow a symlink in the last component (default true). */
  followLast?: boolean;
  /** Missing or non-directory components are taken as plain names instead of failing (paths about to be made). */
  lenient?: boolean;
  /** `..` above the root fails with `escape` instead of staying at the root. */
  refuseEscape?: boolean;
  /** Called with each symlink passed through (relative path). */
  onLink?: (rel: string) => void;
}

export type Resolved =
  | { ok: true; rel: string }
  | { ok: false; reason: 'missing' | 'not-directory' | 'loop' | 'escape' };

const MAX_LINKS = 40;

function components(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

/** Resolves `path` (relative or absolute, both from the root) to a relative path with no links left in it. */
export function resolveInRoot(path: string, lookup: (rel: string) => RootNode, options: ResolveOptions = {}): Resolved {
  const followLast = options.followLast ?? true;
  const pending = components(path);
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '..') {
      if (resolved.length === 0 && options.refuseEscape) return { ok: false, reason: 'escape' };
      resolved.pop();
      continue;
    }
    const rel = resolved.length === 0 ? part : `${resolved.join('/')}/${part}`;
    const last = pending.length === 0;
    if (last && !followLast) {
      resolved.push(part);
      break;
    }
    const node = lookup(rel);
    if (node.kind === 'link') {
      if (++links > MAX_LINKS) return { ok: false, reason: 'loop' };
      options.onLink?.(rel);
      if (node.target.startsWith('/')) resolved.length = 0;
      pending.unshift(...components(node.target));
      continue;
    }
    if (!options.lenient) {
      if (node.kind === 'missing') return { ok: false, reason: 'missing' };
      if (!last && node.kind !== 'directory') return { ok: false, reason: 'not-directory' };
    }
    resolved.push(part);
  }
  return { ok: true, rel: resolved.join('/') };
}
