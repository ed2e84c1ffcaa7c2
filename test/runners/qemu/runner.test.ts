// The QEMU runner against a real VM (TCG, Debian's cloud kernel): one VM booted for the whole file, with a
// tiny busybox build root; steps, channels, the workspace both ways, aborting a step, host-key pinning.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractTar } from '../../../src/archive/safe-extract.ts';
import { rm } from 'node:fs/promises';
import { generateEd25519, opensshPrivateKey, publicKeyBlob } from '../../../src/runners/qemu/keys.ts';
import { QemuRunner } from '../../../src/runners/qemu/runner.ts';
import { HostKeyMismatchError, SshConnection } from '../../../src/runners/qemu/ssh.ts';
import type { OutputStream, RunOptions, StepResources } from '../../../src/runners/runner.ts';
import { kernelEnv, leftovers, makeTempDir, podFor, qemuProcessesMentioning, SHARED_CACHE, testKernel, tinyRoot } from './helpers.ts';

class Output {
  readonly chunks: { stream: OutputStream; data: Buffer }[] = [];
  readonly onOutput = (stream: OutputStream, data: Buffer): void => {
    this.chunks.push({ stream, data });
  };
  text(stream: OutputStream): string {
    return Buffer.concat(this.chunks.filter((c) => c.stream === stream).map((c) => c.data)).toString('utf8');
  }
}

const ENV = { HOME: '/home/build', PATH: '/usr/bin:/bin' };

function opts(out: Output, extra: Partial<RunOptions> = {}): RunOptions {
  return { env: ENV, workdir: '/home/build', onOutput: out.onOutput, ...extra };
}

describe('QemuRunner in a real VM', () => {
  let dir: string;
  let tempParent: string;
  let workspace: string;
  let runner: QemuRunner;
  const logs: string[] = [];
  const workspaceFile = randomBytes(3 * 1024 * 1024);

  beforeAll(async () => {
    dir = await makeTempDir();
    tempParent = path.join(dir, 'tmp');
    workspace = path.join(dir, 'workspace');
    await mkdir(tempParent);
    await mkdir(path.join(workspace, 'melange-out/test-pkg'), { recursive: true });
    await mkdir(path.join(workspace, 'src/deep/er'), { recursive: true });
    await writeFile(path.join(workspace, 'src/deep/er/data.bin'), workspaceFile);
    await writeFile(path.join(workspace, 'src/script.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    const root = await tinyRoot(dir);
    const kernel = await testKernel();
    runner = new QemuRunner({ artifactDir: SHARED_CACHE, env: kernelEnv(kernel), accel: 'auto', bootTimeoutMs: 120_000, tempDir: tempParent, log: (l) => logs.push(l) });
    await runner.start(podFor(root, workspace));
  });

  afterAll(async () => {
    await runner?.terminate();
    // Nothing may outlive the runner: no QEMU process, nothing in its temp dir.
    if (tempParent) {
      expect(await qemuProcessesMentioning(tempParent)).toEqual([]);
      expect(await leftovers(tempParent)).toEqual([]);
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('logs the accelerator it chose', () => {
    expect(logs.some((l) => /^accelerator: (kvm|tcg)/.test(l))).toBe(true);
  });

  it('returns a step\'s exit code and keeps stdout and stderr apart', async () => {
    const out = new Output();
    const code = await runner.run(['/bin/sh', '-c', 'echo to-out; echo to-err >&2; exit 42'], opts(out));
    expect(code).toBe(42);
    expect(out.text('stdout')).toBe('to-out\n');
    expect(out.text('stderr')).toBe('to-err\n');
  });

  it('measures every step inside the guest: a 1 s sleep has wall ≥ 1 s and CPU ≪ wall', async () => {
    const seen: StepResources[] = [];
    const code = await runner.run(['/bin/sh', '-c', 'sleep 1'], opts(new Output(), { onResources: (r) => seen.push(r) }));
    expect(code).toBe(0);
    expect(seen).toHaveLength(1);
    const r = seen[0]!;
    expect(r.wallMs).toBeGreaterThanOrEqual(1000);
    // Under TCG starting a step (sh, setpriv through its loader) alone costs ~0.4 s of CPU.
    expect(r.userMs + r.systemMs).toBeLessThan(r.wallMs / 2);
    expect(r.maxRssKiB).toBeGreaterThan(0);
    // A step killed by a signal still reports 128+N through the measuring wrapper.
    expect(await runner.run(['/bin/sh', '-c', 'kill -KILL $$'], opts(new Output()))).toBe(137);
  });

  it('runs steps as the build user with exactly the given environment', async () => {
    const out = new Output();
    const env = { PATH: '/bin', ODD: "quote ' and \"double\" and $dollar", MULTI: 'line1\nline2', '-dash': 'x' };
    expect(await runner.run(['/bin/env'], opts(out, { env }))).toBe(0);
    const seen = out.text('stdout');
    for (const [k, v] of Object.entries(env)) expect(seen).toContain(`${k}=${v}\n`);
    // Nothing else: 4 variables, one of them spanning two lines.
    expect(seen.split('\n').filter((l) => l !== '').length).toBe(5);
    const ids = new Output();
    expect(await runner.run(['/bin/id', '-u'], opts(ids))).toBe(0);
    expect(ids.text('stdout').trim()).toBe('1000');
    const groups = new Output();
    expect(await runner.run(['/bin/id', '-G'], opts(groups))).toBe(0);
    expect(groups.text('stdout').trim()).toBe('1000');
  });

  it('runs inside the build root, not the initramfs', async () => {
    const out = new Output();
    expect(await runner.run(['/bin/sh', '-c', 'cat /etc/os-release; ls /usr/libexec/builder 2>&1 || echo no-initramfs'], opts(out))).toBe(0);
    expect(out.text('stdout')).toContain('PRETTY_NAME="tiny test root"');
    expect(out.text('stdout')).toContain('no-initramfs');
  });

  it('creates a missing working directory, owned by the build user', async () => {
    const out = new Output();
    expect(await runner.run(['/bin/sh', '-c', 'pwd; stat -c %u:%g /home/build/made /home/build/made/here'], opts(out, { workdir: '/home/build/made/here' }))).toBe(0);
    expect(out.text('stdout')).toBe('/home/build/made/here\n1000:1000\n1000:1000\n');
  });

  it('passes requests far larger than an SSH command line', async () => {
    // One argument or variable may be up to 128 KiB (MAX_ARG_STRLEN), as on any Linux.
    const big = 'y'.repeat(120_000);
    const out = new Output();
    expect(await runner.run(['/bin/sh', '-c', 'echo ${#BIG} ${#1}', 'sh', big], opts(out, { env: { ...ENV, BIG: big } }))).toBe(0);
    expect(out.text('stdout')).toBe('120000 120000\n');
  });

  it('sends the workspace in, owned by the build user', async () => {
    const out = new Output();
    expect(await runner.run(['/bin/sh', '-c', 'sha256sum src/deep/er/data.bin; stat -c "%u:%g %a" src/script.sh; ./src/script.sh'], opts(out))).toBe(0);
    const digest = createHash('sha256').update(workspaceFile).digest('hex');
    expect(out.text('stdout')).toBe(`${digest}  src/deep/er/data.bin\n1000:1000 755\nhi\n`);
  });

  it('streams melange-out back as a tar that extracts safely on the host', async () => {
    const out = new Output();
    const script = [
      'mkdir -p melange-out/test-pkg/usr/bin melange-out/test-pkg/usr/share/doc',
      'dd if=/dev/urandom of=melange-out/test-pkg/usr/bin/tool bs=1024 count=2048 2>/dev/null',
      'chmod 755 melange-out/test-pkg/usr/bin/tool',
      'ln -s tool melange-out/test-pkg/usr/bin/alias',
      `echo readme > melange-out/test-pkg/usr/share/doc/${'long-name-'.repeat(12)}.txt`,
      'sha256sum melange-out/test-pkg/usr/bin/tool',
    ].join('\n');
    expect(await runner.run(['/bin/sh', '-ec', script], opts(out))).toBe(0);
    const guestDigest = out.text('stdout').split(' ')[0];
    const dest = path.join(dir, 'back');
    await mkdir(dest);
    const stream = await runner.workspaceTar();
    expect(stream).not.toBeNull();
    await extractTar(stream!, { dest, where: 'workspace from VM' });
    const tool = path.join(dest, 'test-pkg/usr/bin/tool');
    const hostDigest = createHash('sha256');
    for await (const chunk of createReadStream(tool)) hostDigest.update(chunk as Buffer);
    expect(hostDigest.digest('hex')).toBe(guestDigest);
    expect((await stat(tool)).mode & 0o777).toBe(0o755);
    expect(await readlink(path.join(dest, 'test-pkg/usr/bin/alias'))).toBe('tool');
    expect(await readFile(path.join(dest, `test-pkg/usr/share/doc/${'long-name-'.repeat(12)}.txt`), 'utf8')).toBe('readme\n');
  });

  it('kills an aborted step and keeps working', async () => {
    const controller = new AbortController();
    const out = new Output();
    const running = runner.run(['/bin/sh', '-c', 'echo started; sleep 300 & sleep 301; echo never'], {
      ...opts(out),
      signal: controller.signal,
      onOutput: (s, c) => {
        out.onOutput(s, c);
        if (c.toString().includes('started')) controller.abort();
      },
    });
    await expect(running).rejects.toThrow(/aborted/);
    const ps = await runner.control(['sh', '-c', 'for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr "\\0" " "; echo; done']);
    expect(ps.stdout.toString()).not.toMatch(/sleep 30[01]/);
    const next = new Output();
    expect(await runner.run(['/bin/echo', 'still here'], opts(next))).toBe(0);
    expect(next.text('stdout')).toBe('still here\n');
  });

  it('offers a control channel: root, outside the build root', async () => {
    const who = await runner.control(['id', '-u']);
    expect(who.code).toBe(0);
    expect(who.stdout.toString().trim()).toBe('0');
    const conf = await runner.readFile('/etc/builder/run.conf', 1000);
    expect(conf?.data.toString()).toContain('BUILD_UID=1000');
    expect(conf?.truncated).toBe(false);
    const cut = await runner.readFile('/etc/builder/run.conf', 5);
    expect(cut).toEqual({ data: Buffer.from('BUILD'), truncated: true });
    expect(await runner.readFile('/nonexistent/file', 10)).toBeNull();
    const failing = await runner.control(['sh', '-c', 'echo oops >&2; exit 3']);
    expect(failing.code).toBe(3);
    expect(failing.stderr.toString()).toBe('oops\n');
    // The SSH server would drop the connection over a command line this long; it is refused first.
    await expect(runner.control(['echo', 'z'.repeat(20_000)])).rejects.toThrow(/longer than the VM's SSH server accepts/);
    const stdin = new PassThrough();
    stdin.end('z'.repeat(20_000));
    const viaStdin = await runner.control(['wc', '-c'], { stdin });
    expect(viaStdin.stdout.toString().trim()).toBe('20000');
  });

  it('reads the build root\'s os-release', async () => {
    expect(await runner.releaseData()).toContain('ID=tiny');
  });

  it('gives the guest no network: nothing on the host is reachable', async () => {
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const out = new Output();
      const code = await runner.run(['/bin/busybox', 'nc', '-w', '3', '10.0.2.2', String(port)], opts(out));
      expect(code).not.toBe(0);
      expect(connections).toBe(0);
    } finally {
      server.close();
    }
  });

  it('refuses a guest whose host key is not the pinned one', async () => {
    const other = generateEd25519();
    const client = generateEd25519();
    await expect(
      SshConnection.connect({
        port: runner.sshPort!,
        username: 'root',
        privateKey: opensshPrivateKey(client),
        hostKey: publicKeyBlob(other),
        readyTimeoutMs: 30_000,
        what: 'test channel',
      }),
    ).rejects.toBeInstanceOf(HostKeyMismatchError);
  });
});
