// An exclusive lock between processes (and between callers in one process) on a path: `<path>.lock`,
// created atomically with the holder's pid in it. A lock whose holder died is broken.
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { BuilderError, errorMessage } from '../errors.ts';
import { removeQuietly } from './atomic.ts';

export interface FileLockOptions {
  /** Give up after this long (default 60 s). */
  timeoutMs?: number;
  /** Base delay between attempts (default 25 ms, jittered). */
  retryMs?: number;
}

/** A lock file with no readable pid older than this is debris from a crash, not a lock being created. */
const EMPTY_LOCK_GRACE_MS = 10_000;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readHolder(lockPath: string): Promise<{ content: string; pid: number | undefined } | undefined> {
  try {
    const content = await readFile(lockPath, 'utf8');
    const pid = Number(/^(\d+)/.exec(content)?.[1]);
    return { content, pid: Number.isSafeInteger(pid) && pid > 0 ? pid : undefined };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Creates the lock file with `token` as its content, atomically (write a temp file, hard-link it in). */
async function tryCreate(lockPath: string, token: string): Promise<boolean> {
  const temp = `${lockPath}.${process.pid}.${randomBytes(6).toString('hex')}`;
  await writeFile(temp, token, { mode: 0o644 });
  try {
    await link(temp, lockPath);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await removeQuietly(temp);
  }
}

/**
 * Moves a dead holder's lock out of the way. The rename is atomic, so of several waiters only one breaks it;
 * if what it moved turns out to be a fresh lock (taken between our read and our rename), it is put back.
 */
async function breakStale(lockPath: string, staleContent: string): Promise<void> {
  const aside = `${lockPath}.stale-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    await rename(lockPath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    const moved = await readFile(aside, 'utf8');
    if (moved !== staleContent) {
      await link(aside, lockPath).catch(() => undefined);
    }
  } finally {
    await removeQuietly(aside);
  }
}

/** Runs `fn` while holding the lock `<path>.lock`; the lock is released however `fn` ends. */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, opts: FileLockOptions = {}): Promise<T> {
  const lockPath = `${path}.lock`;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const retryMs = opts.retryMs ?? 25;
  const token = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await tryCreate(lockPath, token)) break;
    } catch (err) {
      throw new BuilderError(`cannot create lock ${lockPath}: ${errorMessage(err)}`, { cause: err });
    }
    const holder = await readHolder(lockPath);
    if (holder) {
      const stale =
        holder.pid !== undefined
          ? !isAlive(holder.pid)
          : Date.now() - (await stat(lockPath).then((s) => s.mtimeMs, () => Date.now())) > EMPTY_LOCK_GRACE_MS;
      if (stale) {
        await breakStale(lockPath, holder.content);
        continue;
      }
    }
    if (Date.now() >= deadline) {
      const who = holder?.pid !== undefined ? ` held by pid ${holder.pid}` : '';
      throw new BuilderError(`timed out after ${timeoutMs} ms waiting for lock ${lockPath}${who}`);
    }
    await sleep(retryMs + Math.floor(Math.random() * retryMs));
  }
  try {
    return await fn();
  } finally {
    // Only remove the lock if it is still ours (a stale-lock breaker could in theory have replaced it).
    const holder = await readHolder(lockPath).catch(() => undefined);
    if (holder?.content === token) await unlink(lockPath).catch(() => undefined);
  }
}
