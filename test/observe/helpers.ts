// Fixtures for the observability tests: the guest's own busybox (from the cached base initramfs) to run the
// hook's converter on the host, recorded traces, and events in the hook's wire format.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGunzip, createGzip } from 'node:zlib';
import { execa } from 'execa';
import { ensureSealedBaseInitramfs } from '../../src/runners/qemu/seal.ts';
import { CpioWriter, readCpio } from '../../src/initramfs/cpio.ts';
import { guestSourceUrl, OBSERVABILITY_GUEST_FILES } from '../../src/observe/guest-files.ts';
import { SHARED_CACHE, tinyRoot } from '../runners/qemu/helpers.ts';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
export const CONVERTER = fileURLToPath(guestSourceUrl('observe.awk'));

/** The busybox the VM runs (static, from the base initramfs), copied out once per test run. */
export async function guestBusybox(): Promise<string> {
  // Busybox picks the applet from its own name unless that name is `busybox`.
  const dest = path.join(SHARED_CACHE, 'observe-test', 'busybox');
  if ((await stat(dest).catch(() => undefined))?.isFile()) return dest;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'builder-observe-bb-'));
  try {
    const root = await tinyRoot(dir);
    await mkdir(path.dirname(dest), { recursive: true });
    const temp = `${dest}.${process.pid}.tmp`;
    await writeFile(temp, await readFile(path.join(root, 'bin/busybox')), { mode: 0o755 });
    await execa('mv', ['-f', temp, dest]);
    return dest;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface ConverterRun {
  /** The NDJSON the converter wrote, parsed line by line. */
  events: Record<string, unknown>[];
  lines: string[];
  stats: Record<string, unknown>;
}

/**
 * Runs the hook's converter over trace text. `awk` is the interpreter argv (busybox awk by default);
 * `proc=none` unless given, so nothing from the host's /proc leaks in.
 */
export async function runConverter(trace: string, options: { awk?: string[]; vars?: Record<string, string> } = {}): Promise<ConverterRun> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'builder-observe-conv-'));
  try {
    const awk = options.awk ?? [await guestBusybox(), 'awk'];
    const statsFile = path.join(dir, 'stats.json');
    const vars = { proc: 'none', events: '/dev/stdout', stats: statsFile, ...options.vars };
    const args = [...awk.slice(1), ...Object.entries(vars).flatMap(([k, v]) => ['-v', `${k}=${v}`]), '-f', CONVERTER];
    const result = await execa(awk[0]!, args, { input: trace, stripFinalNewline: false });
    const lines = result.stdout.split('\n').filter((l) => l !== '');
    return {
      lines,
      events: lines.map((l) => JSON.parse(l) as Record<string, unknown>),
      stats: JSON.parse(await readFile(statsFile, 'utf8')) as Record<string, unknown>,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function fixture(name: string): Promise<string> {
  return readFile(path.join(FIXTURES, name), 'utf8');
}

/** An exec event in the hook's wire format. */
export function wireExec(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'exec', time: 1.5, pid: 100, ppid: 99, uid: 1000, filename: '/usr/bin/gcc', binary: '/usr/bin/gcc', comm: 'gcc',
    argv: ['gcc', '-c', 'x.c'], argv_complete: true, scope: 'build', ...over,
  };
}

/** A network event in the hook's wire format. */
export function wireNet(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'net', function: 'tcp_connect', time: 2.25, pid: 101, process: 'curl', binary: '/usr/bin/curl', uid: 1000, protocol: 'tcp',
    family: 'ipv4', src_addr: '10.0.2.15', src_port: 40000, dst_addr: '10.0.2.2', dst_port: 8080, outcome: 'established', scope: 'build', ...over,
  };
}

/**
 * A copy of the cached base initramfs without the observability hook and its sentinel: what a custom
 * initramfs made without our hook looks like. Made once, next to the base it comes from.
 */
export async function initramfsWithoutHook(): Promise<string> {
  const base = await ensureSealedBaseInitramfs({ cacheDir: SHARED_CACHE });
  const dest = path.join(path.dirname(base.path), `nohook-${base.digest}.cpio.gz`);
  if ((await stat(dest).catch(() => undefined))?.isFile()) return dest;
  const drop = new Set(OBSERVABILITY_GUEST_FILES.map((f) => f.path));
  const temp = `${dest}.${process.pid}.tmp`;
  const out = new PassThrough();
  const writing = pipeline(out, createGzip(), createWriteStream(temp));
  const w = new CpioWriter(out);
  for await (const e of readCpio(createReadStream(base.path).pipe(createGunzip()))) {
    const own = { mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, mtime: e.mtime };
    if (drop.has(e.name)) continue;
    if (e.type === 'directory') await w.directory(e.name, own);
    else if (e.type === 'symlink') await w.symlink(e.name, e.linkTarget!, own);
    else if (e.type === 'char' || e.type === 'block') await w.device(e.name, e.type, e.rdevMajor, e.rdevMinor, own);
    else if (e.type === 'file') await w.file(e.name, await e.buffer(), own);
  }
  await w.finish();
  out.end();
  await writing;
  await rename(temp, dest);
  return dest;
}
