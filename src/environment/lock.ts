// An exclusive lock between builder processes (and between builds inside one process), held as a file created
// with O_EXCL. The lock only prevents duplicate work: cache entries are published by an atomic rename, so a
// lock broken by mistake can cost time but never corrupt a root.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BuilderError } from '../errors.ts';

export interface LockOptions {
  /** Called once when the lock is held by someone else, with the holder's description. */
  onWait?: (holder: string) => void;
  signal?: AbortSignal;
  /** Poll interval while waiting (ms). */
  pollMs?: number;
}

export interface HeldLock {
  readonly path: string;
  release(): Promise<void>;
}

interface Holder {
  host: string;
  pid: number;
  token: string;
}

function parseHolder(text: string): Holder | undefined {
  const [host, pid, token] = text.trim().split(' ');
  const n = Number(pid);
  if (!host || !token || !Number.isSafeInteger(n) || n <= 0) return undefined;
  return { host, pid: n, token };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A holder on this host whose process is gone left the lock behind (crash, kill -9). */
function isStale(holder: Holder | undefined): boolean {
  if (holder === undefined) return false;
  return holder.host === hostname() && !processAlive(holder.pid);
}

export async function acquireLock(path: string, options: LockOptions = {}): Promise<HeldLock> {
  await mkdir(dirname(path), { recursive: true });
  const token = randomBytes(8).toString('hex');
  const me = `${hostname()} ${process.pid} ${token}\n`;
  let announced = false;
  for (;;) {
    if (options.signal?.aborted) throw new BuilderError(`gave up waiting for lock ${path}`, { cause: options.signal.reason });
    try {
      const fh = await open(path, 'wx', 0o644);
      try {
        await fh.writeFile(me);
      } finally {
        await fh.close();
      }
      return { path, release: () => releaseLock(path, token) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new BuilderError(`cannot create lock ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
    const text = await readFile(path, 'utf8').catch(() => '');
    // An empty file is a lock being written right now: wait for its content rather than calling it stale.
    const holder = parseHolder(text);
    if (isStale(holder)) {
      // Renaming is atomic: of several waiters that saw the same stale lock, only one moves it away.
      const aside = `${path}.stale-${token}`;
      try {
        await rename(path, aside);
        const moved = parseHolder(await readFile(aside, 'utf8').catch(() => ''));
        await rm(aside, { force: true });
        if (moved && moved.token !== holder?.token && !isStale(moved)) {
          // We moved a fresh lock taken between our read and rename: put it back and keep waiting.
          await writeBack(path, moved);
        }
      } catch {
        // someone else dealt with it
      }
      continue;
    }
    if (!announced && holder) {
      announced = true;
      options.onWait?.(`${holder.host} pid ${holder.pid}`);
    }
    await sleep(options.pollMs ?? 100, undefined, { signal: options.signal }).catch(() => undefined);
  }
}

async function writeBack(path: string, holder: Holder): Promise<void> {
  try {
    const fh = await open(path, 'wx', 0o644);
    await fh.writeFile(`${holder.host} ${holder.pid} ${holder.token}\n`);
    await fh.close();
  } catch {
    // it was re-taken already; the lock only saves work, so nothing more is needed
  }
}

async function releaseLock(path: string, token: string): Promise<void> {
  const holder = parseHolder(await readFile(path, 'utf8').catch(() => ''));
  // Only remove our own lock (a stale-lock breaker may have replaced it).
  if (holder?.token === token) await rm(path, { force: true });
}

/** Runs `fn` holding the lock at `path`. */
export async function withLock<T>(path: string, options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(path, options);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
