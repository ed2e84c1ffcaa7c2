// The content-addressed cache of build roots. A root is named by the digest of everything that went into it,
// built in a temp dir beside the cache and renamed into place only when complete, so a reader never sees a
// half-made root and a failed build leaves nothing behind. Roots are never modified once published.
//
// Layout under the cache dir:
//   roots/<digest>/rootfs/      the root itself
//   roots/<digest>/root.json    what it is (RootMeta); its mtime is the last time a build used the root
//   requests/<digest>           request digest → root digest (lets a repeated request skip resolution)
//   locks/<digest>.lock         held while a root is being made
//   tmp/<digest>.<pid>.<token>/ roots being made
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { BuilderError } from '../errors.ts';
import { withLock } from '../os/lock.ts';
import { processAlive } from '../os/process.ts';

export type RootKind = 'base' | 'root';

export interface RootMeta {
  digest: string;
  kind: RootKind;
  /** One line for logs and `builder cache ls`, e.g. `debian:bookworm + 2 apk packages`. */
  description: string;
  created: string;
  /** Apparent size of the tree in bytes (files counted once per path). */
  size: number;
  /** The inputs the digest was computed from, for inspection. */
  inputs: unknown;
}

export interface CachedRoot {
  digest: string;
  /** The entry directory (holds rootfs/ and root.json). */
  dir: string;
  rootfs: string;
  meta: RootMeta;
}

export interface CacheStats {
  /** Roots found ready in the cache (a request digest or a content digest matched). */
  hits: number;
  /** Roots that had to be made by this process. */
  created: number;
  /** Their digests, in order. */
  createdDigests: string[];
  /** Times this process waited for another build making the same root. */
  waited: number;
}

export interface RootListing extends RootMeta {
  dir: string;
  lastUsed: Date;
}

const DIGEST = /^[0-9a-f]{64}$/;

/** SHA-256 over a canonical JSON form (object keys sorted), so equal inputs give equal digests. */
export function digestOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** SHA-256 of a file, streamed. */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Removes a tree even when it holds read-only directories and we are not root. */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch {
    await execa('chmod', ['-R', 'u+rwx', path], { reject: false });
    await rm(path, { recursive: true, force: true });
  }
}

/** Apparent size of a tree, without following symlinks. */
export async function treeSize(root: string): Promise<number> {
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) total += (await lstat(p)).size;
    }
  };
  await walk(root);
  return total;
}

/**
 * A digest of a tree's metadata (paths, types, modes, owners, sizes, mtimes, link targets): cheap enough to
 * run per build, and it changes whenever a file is added, removed, replaced or rewritten in place.
 */
export async function treeFingerprint(root: string): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (dir: string, rel: string): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const p = join(dir, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(p);
      const link = st.isSymbolicLink() ? await readlink(p) : '';
      hash.update(`${r}\0${st.mode}\0${st.uid}\0${st.gid}\0${st.isFile() ? st.size : 0}\0${st.mtimeMs}\0${link}\n`);
      if (st.isDirectory()) await walk(p, r);
    }
  };
  await walk(root, '');
  return hash.digest('hex');
}

export class RootCache {
  readonly dir: string;
  readonly stats: CacheStats = { hits: 0, created: 0, createdDigests: [], waited: 0 };

  constructor(dir: string) {
    this.dir = dir;
  }

  private entryDir(digest: string): string {
    return join(this.dir, 'roots', digest);
  }

  /** The ready root with this digest, or undefined. Marks it used. */
  async get(digest: string): Promise<CachedRoot | undefined> {
    if (!DIGEST.test(digest)) return undefined;
    const dir = this.entryDir(digest);
    const metaFile = join(dir, 'root.json');
    let meta: RootMeta;
    try {
      meta = JSON.parse(await readFile(metaFile, 'utf8')) as RootMeta;
    } catch {
      return undefined;
    }
    const now = new Date();
    await utimes(metaFile, now, now).catch(() => undefined);
    return { digest, dir, rootfs: join(dir, 'rootfs'), meta };
  }

  /** The root digest recorded for a request digest, when that root is still in the cache. */
  async lookupRequest(requestDigest: string): Promise<CachedRoot | undefined> {
    let target: string;
    try {
      target = (await readFile(join(this.dir, 'requests', requestDigest), 'utf8')).trim();
    } catch {
      return undefined;
    }
    return this.get(target);
  }

  async recordRequest(requestDigest: string, rootDigest: string): Promise<void> {
    const dir = join(this.dir, 'requests');
    await mkdir(dir, { recursive: true });
    const temp = join(dir, `.${requestDigest}.${randomBytes(6).toString('hex')}.tmp`);
    await writeFile(temp, `${rootDigest}\n`);
    await rename(temp, join(dir, requestDigest));
  }

  /**
   * The root with `digest`: taken from the cache, or made by `create` (which fills the empty `rootfs` it is
   * given) under a lock, so concurrent builds asking for the same root make it once.
   */
  async obtain(
    digest: string,
    create: (rootfs: string) => Promise<{ kind: RootKind; description: string; inputs: unknown }>,
    options: { log: (line: string) => void; signal?: AbortSignal },
  ): Promise<{ root: CachedRoot; created: boolean }> {
    if (!DIGEST.test(digest)) throw new BuilderError(`internal: bad root digest ${digest}`);
    const ready = await this.get(digest);
    if (ready) {
      this.stats.hits++;
      return { root: ready, created: false };
    }
    const lockFile = join(this.dir, 'locks', `${digest}.lock`);
    return withLock(
      lockFile,
      {
        signal: options.signal,
        onWait: (holder) => {
          this.stats.waited++;
          options.log(`environment: waiting for ${holder}, which is making root ${digest.slice(0, 12)}`);
        },
      },
      async () => {
        const made = await this.get(digest);
        if (made) {
          this.stats.hits++;
          return { root: made, created: false };
        }
        const root = await this.build(digest, create);
        this.stats.created++;
        this.stats.createdDigests.push(digest);
        return { root, created: true };
      },
    );
  }

  private async build(
    digest: string,
    create: (rootfs: string) => Promise<{ kind: RootKind; description: string; inputs: unknown }>,
  ): Promise<CachedRoot> {
    const tmpParent = join(this.dir, 'tmp');
    await mkdir(tmpParent, { recursive: true });
    await mkdir(join(this.dir, 'roots'), { recursive: true });
    const temp = join(tmpParent, `${digest}.${process.pid}.${randomBytes(6).toString('hex')}`);
    const rootfs = join(temp, 'rootfs');
    await mkdir(rootfs, { recursive: true, mode: 0o755 });
    try {
      const made = await create(rootfs);
      const meta: RootMeta = {
        digest,
        kind: made.kind,
        description: made.description,
        created: new Date().toISOString(),
        size: await treeSize(rootfs),
        inputs: made.inputs,
      };
      await writeFile(join(temp, 'root.json'), `${JSON.stringify(meta, null, 2)}\n`);
      const final = this.entryDir(digest);
      try {
        await rename(temp, final);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Published meanwhile by a process that did not see our lock (e.g. after a lock was broken).
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        await removeTree(temp);
      }
      const published = await this.get(digest);
      if (!published) throw new BuilderError(`root ${digest} vanished from the cache right after it was made`);
      return published;
    } catch (err) {
      await removeTree(temp);
      throw err;
    }
  }

  async list(): Promise<RootListing[]> {
    const rootsDir = join(this.dir, 'roots');
    const names = await namesIn(rootsDir);
    const out: RootListing[] = [];
    for (const name of names) {
      if (!DIGEST.test(name)) continue;
      const metaFile = join(rootsDir, name, 'root.json');
      try {
        const meta = JSON.parse(await readFile(metaFile, 'utf8')) as RootMeta;
        const info = await stat(metaFile);
        out.push({ ...meta, dir: join(rootsDir, name), lastUsed: info.mtime });
      } catch {
        continue;
      }
    }
    return out.sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime());
  }

  /**
   * Removes roots last used before `olderThan` (all of them when undefined), request records pointing at
   * missing roots, and temp dirs whose process is gone. Returns the removed roots.
   */
  async prune(options: { olderThan?: Date; dryRun?: boolean } = {}): Promise<RootListing[]> {
    const removed: RootListing[] = [];
    for (const root of await this.list()) {
      if (options.olderThan && root.lastUsed >= options.olderThan) continue;
      removed.push(root);
      if (!options.dryRun) await this.remove(root.digest);
    }
    if (options.dryRun) return removed;
    await this.removeDanglingRequests();
    await this.removeAbandonedTemps();
    return removed;
  }

  /** Removes one root (no-op when absent). Builds already using it keep their open files only. */
  async remove(digest: string): Promise<void> {
    if (!DIGEST.test(digest)) return;
    // Holding the root's lock keeps a concurrent build from re-making it while it is being deleted.
    await withLock(join(this.dir, 'locks', `${digest}.lock`), {}, async () => {
      // Renamed out of roots/ first, so nobody can pick up a half-deleted root.
      const aside = join(this.dir, 'tmp', `${digest}.prune.${randomBytes(6).toString('hex')}`);
      await mkdir(join(this.dir, 'tmp'), { recursive: true });
      try {
        await rename(this.entryDir(digest), aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      await removeTree(aside);
    });
  }

  private async removeDanglingRequests(): Promise<void> {
    const dir = join(this.dir, 'requests');
    const names = await namesIn(dir);
    for (const name of names) {
      const file = join(dir, name);
      const target = (await readFile(file, 'utf8').catch(() => '')).trim();
      const exists = DIGEST.test(target) && (await stat(join(this.entryDir(target), 'root.json')).then(() => true, () => false));
      if (!exists) await rm(file, { force: true });
    }
  }

  private async removeAbandonedTemps(): Promise<void> {
    const dir = join(this.dir, 'tmp');
    const names = await namesIn(dir);
    for (const name of names) {
      const pid = Number(name.split('.')[1]);
      const alive = processAlive(pid);
      if (!alive) await removeTree(join(dir, name));
    }
  }
}

/** The entries of a directory; none when it does not exist (yet). */
async function namesIn(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}
