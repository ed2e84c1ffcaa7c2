// --network-allow enforced while the build runs: with two servers on 127.0.0.1 reached through the VM's
// user-mode gateway (10.0.2.2), the listed port answers and the other is never reached — the connection is
// stopped at connect time by the user-mode network — and the attempt is still recorded in the guest.
import net from 'node:net';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NetworkConnection } from '../../../src/observe/events.ts';
import { QemuRunner } from '../../../src/runners/qemu/runner.ts';
import { kernelEnv, leftovers, makeTempDir, podFor, SHARED_CACHE, testKernel, tinyRoot } from './helpers.ts';

function server(greeting: string): Promise<{ port: number; accepted: () => number; close: () => void }> {
  let count = 0;
  const s = net.createServer((socket) => {
    count++;
    socket.end(greeting);
  });
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve({ port: (s.address() as net.AddressInfo).port, accepted: () => count, close: () => s.close() })));
}

describe('--network-allow in the VM', () => {
  let dir: string;
  let tempParent: string;
  let runner: QemuRunner;
  let allowed: Awaited<ReturnType<typeof server>>;
  let denied: Awaited<ReturnType<typeof server>>;

  beforeAll(async () => {
    dir = await makeTempDir();
    tempParent = path.join(dir, 'tmp');
    const workspace = path.join(dir, 'workspace');
    await mkdir(tempParent);
    await mkdir(path.join(workspace, 'melange-out'), { recursive: true });
    [allowed, denied] = await Promise.all([server('hello from the allowed server\n'), server('the denied server\n')]);
    const root = await tinyRoot(dir);
    runner = new QemuRunner({ artifactDir: SHARED_CACHE, env: kernelEnv(await testKernel()), accel: 'auto', bootTimeoutMs: 120_000, tempDir: tempParent });
    await runner.start(podFor(root, workspace, { network: true, networkAllow: [{ host: '10.0.2.2', port: allowed.port }] }));
  }, 180_000);

  afterAll(async () => {
    await runner?.terminate();
    allowed?.close();
    denied?.close();
    if (tempParent) expect(await leftovers(tempParent)).toEqual([]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('connects to the listed destination and never reaches the other, and records both attempts', async () => {
    const chunks: Buffer[] = [];
    const script = [
      `/bin/busybox nc -w 5 10.0.2.2 ${allowed.port} </dev/null && echo allowed-ok`,
      `if /bin/busybox nc -w 3 10.0.2.2 ${denied.port} </dev/null; then echo denied-reached; else echo denied-refused; fi`,
    ].join('\n');
    expect(await runner.run(['/bin/sh', '-c', script], { env: { PATH: '/bin' }, workdir: '/home/build', onOutput: (_s, c) => chunks.push(c) })).toBe(0);
    const out = Buffer.concat(chunks).toString();
    expect(out).toContain('hello from the allowed server\nallowed-ok\n');
    expect(out).toContain('denied-refused');
    expect(out).not.toContain('the denied server');
    expect(allowed.accepted()).toBe(1);
    expect(denied.accepted()).toBe(0);

    const recording = await runner.collectObservability();
    const connects = (recording?.events ?? []).filter((e): e is NetworkConnection => e.type === 'net' && e.function === 'tcp_connect');
    expect(connects).toContainEqual(expect.objectContaining({ dst_addr: '10.0.2.2', dst_port: allowed.port }));
    expect(connects).toContainEqual(expect.objectContaining({ dst_addr: '10.0.2.2', dst_port: denied.port }));
    expect(connects.find((c) => c.dst_port === denied.port)).not.toMatchObject({ outcome: 'established' });
  }, 120_000);
});
