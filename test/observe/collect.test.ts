// Retrieval over a control channel, run for real on the host: the channel executes the same commands with
// /bin/sh, with the sentinel's place moved into a temp dir, so the sentinel, the hook's stop, the events file,
// its size and the cap are all exercised without a VM (the VM tests do the same against the real guest).
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { collectGuestObservability, type GuestChannel } from '../../src/observe/collect.ts';
import { ObservabilityError } from '../../src/observe/events.ts';
import { SENTINEL_PATH } from '../../src/observe/guest-files.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { wireExec, wireNet } from './helpers.ts';

const STATUS = { version: 1, state: 'stopped', uptime: 100, features: ['exec', 'tcp'], unavailable: [], converter: 'stopped', tampered: false };

/** Runs argv on the host, with the guest's sentinel path pointing into `dir`. */
function hostChannel(dir: string): GuestChannel & { commands: string[][] } {
  const commands: string[][] = [];
  return {
    commands,
    async control(argv, options = {}) {
      const args = argv.map((a) => (a === SENTINEL_PATH ? path.join(dir, 'sentinel') : a));
      commands.push(args);
      const child = execa(args[0]!, args.slice(1), { reject: false, cancelSignal: options.signal, encoding: 'buffer', buffer: false });
      // Like QemuRunner.control: output goes to onOutput and is kept up to maxOutputBytes (default 1 MiB).
      const max = options.maxOutputBytes ?? 1 << 20;
      const kept = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
      for (const stream of ['stdout', 'stderr'] as const) {
        child[stream]!.on('data', (c: Buffer) => {
          options.onOutput?.(stream, c);
          if (Buffer.concat(kept[stream]).length + c.length <= max) kept[stream].push(c);
        });
      }
      const r = await child;
      return { code: r.exitCode ?? null, signal: r.signal ?? null, stdout: Buffer.concat(kept.stdout), stderr: Buffer.concat(kept.stderr) };
    },
  };
}

async function guest(dir: string, o: { hook?: string; events?: string | null; sentinel?: string } = {}): Promise<void> {
  const hook = path.join(dir, 'hook');
  const events = path.join(dir, 'events.json');
  await writeFile(path.join(dir, 'sentinel'), o.sentinel ?? JSON.stringify({ version: 1, hook, events, status: path.join(dir, 'status.json') }));
  await writeFile(hook, o.hook ?? `#!/bin/sh\n[ "$1" = stop ] || exit 2\necho "observe: draining" >&2\necho '${JSON.stringify(STATUS)}'\n`);
  await chmod(hook, 0o755);
  if (o.events !== null) await writeFile(events, o.events ?? '');
}

describe('collecting from a guest', () => {
  const tempDir = useTempDirs();

  it('is null when there is no sentinel', async () => {
    const dir = await tempDir();
    const channel = hostChannel(dir);
    expect(await collectGuestObservability(channel)).toBeNull();
    expect(channel.commands).toHaveLength(1);
  });

  it('stops the hook and reads its events, anchoring the boot clock to the host\'s', async () => {
    const dir = await tempDir();
    const lines = [wireExec({ time: 40 }), 'not an event', wireNet({ time: 99.5 })].map((l) => (typeof l === 'string' ? l : JSON.stringify(l)));
    await guest(dir, { events: `${lines.join('\n')}\n` });
    const now = Date.UTC(2026, 2, 3, 12, 0, 0);
    const result = await collectGuestObservability(hostChannel(dir), { now: () => now });
    expect(result).not.toBeNull();
    expect(result!.status).toMatchObject({ state: 'stopped', uptime: 100, features: ['exec', 'tcp'] });
    expect(result!.bootTime).toBe(new Date(now - 100_000).toISOString());
    expect(result!.events.map((e) => e.timestamp)).toEqual([new Date(now - 60_000).toISOString(), new Date(now - 500).toISOString()]);
    expect(result!.retrieval).toMatchObject({ lines: 3, malformed: 1, malformedSamples: ['not an event'], truncated: false, fileBytes: result!.retrieval.bytes });
    expect(result!.implicit).toEqual([expect.objectContaining({ addr: '10.0.2.3', port: 53 })]);
  });

  it('reads at most the cap and says how big the file was', async () => {
    const dir = await tempDir();
    const line = `${JSON.stringify(wireExec())}\n`;
    await guest(dir, { events: line.repeat(100) });
    const result = await collectGuestObservability(hostChannel(dir), { maxBytes: line.length * 10 + 3 });
    expect(result!.retrieval).toMatchObject({ truncated: true, bytes: line.length * 10 + 3, fileBytes: line.length * 100, lines: 10, malformed: 0 });
    expect(result!.events).toHaveLength(10);
  });

  it('is an error when the sentinel is there but the events file is not', async () => {
    const dir = await tempDir();
    await guest(dir, { events: null });
    const err = await collectGuestObservability(hostChannel(dir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObservabilityError);
    expect((err as Error).message).toContain(`has the observability hook (${SENTINEL_PATH}) but no events file ${path.join(dir, 'events.json')}`);
  });

  it('is an error when the hook does not stop cleanly, with what it said', async () => {
    const dir = await tempDir();
    await guest(dir, { hook: '#!/bin/sh\necho "observe: the converter is gone" >&2\nexit 1\n' });
    await expect(collectGuestObservability(hostChannel(dir))).rejects.toThrow(/did not stop cleanly: observe: the converter is gone/);
  });

  it('is an error when the sentinel or the status is not what it should be', async () => {
    const dir = await tempDir();
    await guest(dir, { sentinel: '{"version":2}' });
    await expect(collectGuestObservability(hostChannel(dir))).rejects.toThrow('is not a version 1 observability sentinel');
    await guest(dir, { sentinel: JSON.stringify({ version: 1, hook: 'relative', events: '/e', status: '/s' }) });
    await expect(collectGuestObservability(hostChannel(dir))).rejects.toThrow('has no absolute "hook" path');
    await guest(dir, { hook: '#!/bin/sh\necho "{}"\n' });
    await expect(collectGuestObservability(hostChannel(dir))).rejects.toThrow("the observability hook's status has no version");
  });
});

describe('the sentinel shipped in the base initramfs', () => {
  it('names the hook and files the host expects', async () => {
    const { readFile } = await import('node:fs/promises');
    const { DEFAULT_SENTINEL, guestSourceUrl, OBSERVABILITY_GUEST_FILES } = await import('../../src/observe/guest-files.ts');
    expect(JSON.parse(await readFile(guestSourceUrl('observability.json'), 'utf8'))).toEqual(DEFAULT_SENTINEL);
    expect(OBSERVABILITY_GUEST_FILES.map((f) => `/${f.path}`)).toEqual([DEFAULT_SENTINEL.hook, '/usr/libexec/builder/observe.awk', SENTINEL_PATH]);
    const hook = await execa('sh', ['-n', new URL(guestSourceUrl('observe')).pathname]);
    expect(hook.exitCode).toBe(0);
  });
});
