// The one exclusive lock between builder processes (and between callers inside one process): a file holding
// `<host> <pid> <token>`, put in place atomically (written under a temp name, then hard-linked in, so it is
// never seen empty while being made). A lock is stale, and broken, when its holder on this host is dead, or
// when it holds no readable holder and is older than a grace period (debris of a crash or of an older writer).
// Locks only prevent duplicate or interleaved work; what they guard is published by atomic renames.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { link, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BuilderError, errorMessage } from '../errors.ts';
import { processAlive } from './process.ts';

export interface LockOptions {
  /** Called once when the lock is held by someone else, with the holder's description. */
  onWait?: (holder: string) => void;
  signal?: AbortSignal;
  /** Give up after this long; by default wait until the holder ends or `signal` aborts. */
  timeoutMs?: number;
  /** Base delay between attempts (ms, jittered; default 25). */
  pollMs?: number;
}

export interface HeldLock {
  readonly path: string;
  release(): Promise<void>;
}

/** A lock file without a readable holder older than this is debris from a crash, not a lock being made. */
export const EMPTY_LOCK_GRACE_MS = 10_000;

interface Holder {
  host: string;
  pid: number;
}

/** `<host> <pid> <token>`, or the older `<pid> <token>` (a holder on this host). */
function parseHolder(text: string): Holder | undefined {
  const fields = text.trim().split(/\s+/);
  const [host, pid] = fields.length >= 3 ? [fields[0], fields[1]] : [hostname(), fields[0]];
  const n = Number(pid);
  if (host === undefined || host === '' || !/^\d+$/.test(pid ?? '') || !Number.isSafeInteger(n) || n <= 0) return undefined;
  return { host, pid: n };
}

async function readLock(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function isStale(path: string, content: string): Promise<boolean> {
  const holder = parseHolder(content);
  if (holder !== undefined) return holder.host === hostname() && !processAlive(holder.pid);
  const mtime = await stat(path).then((s) => s.mtimeMs, () => Date.now());
  return Date.now() - mtime > EMPTY_LOCK_GRACE_MS;
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

/** Puts the lock in place with `content`, atomically; false when someone holds it. */
async function tryCreate(path: string, content: string): Promise<boolean> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}`;
  await writeFile(temp, content, { mode: 0o644 });
  try {
    await link(temp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await removeQuietly(temp);
  }
}

/**
 * Moves a stale lock out of the way. The rename is atomic, so of several waiters only one breaks it; if what
 * it moved turns out to be a fresh lock (taken between our read and our rename), it is put back.
 */
async function breakStale(path: string, staleContent: string): Promise<void> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    const moved = await readFile(aside, 'utf8');
    if (moved !== staleContent) await link(aside, path).catch(() => undefined);
  } finally {
    await removeQuietly(aside);
  }
}

export async function acquireLock(path: string, options: LockOptions = {}): Promise<HeldLock> {
  const content = `${hostname()} ${process.pid} ${randomBytes(8).toString('hex')}\n`;
  const pollMs = options.pollMs ?? 25;
  const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
  let announced = false;
  try {
    await mkdir(dirname(path), { recursive: true });
  } catch (err) {
    throw new BuilderError(`cannot create lock ${path}: ${errorMessage(err)}`, { cause: err });
  }
  for (;;) {
    if (options.signal?.aborted) throw new BuilderError(`gave up waiting for lock ${path}`, { cause: options.signal.reason });
    let held: string | undefined;
    try {
      if (await tryCreate(path, content)) return { path, release: () => releaseLock(path, content) };
      held = await readLock(path);
      if (held !== undefined && (await isStale(path, held))) {
        await breakStale(path, held);
        continue;
      }
    } catch (err) {
      throw new BuilderError(`cannot create lock ${path}: ${errorMessage(err)}`, { cause: err });
    }
    const holder = held === undefined ? undefined : parseHolder(held);
    if (Date.now() >= deadline) {
      const who = holder === undefined ? '' : ` held by pid ${holder.pid}`;
      throw new BuilderError(`timed out after ${options.timeoutMs} ms waiting for lock ${path}${who}`);
    }
    if (!announced && holder !== undefined) {
      announced = true;
      options.onWait?.(`${holder.host} pid ${holder.pid}`);
    }
    await sleep(pollMs + Math.floor(Math.random() * pollMs), undefined, { signal: options.signal }).catch(() => undefined);
  }
}

async function releaseLock(path: string, content: string): Promise<void> {
  // Only remove our own lock (a stale-lock breaker could in theory have replaced it).
  if ((await readLock(path).catch(() => undefined)) === content) await removeQuietly(path);
}

/** Runs `fn` holding the lock at `path`; the lock is released however `fn` ends. */
export async function withLock<T>(path: string, options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(path, options);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
