// Failure paths of the QEMU runner with real QEMU: boots that never reach SSH, bad input refused before
// anything starts, and Ctrl-C (a real SIGINT to a child process) during boot and during a step. Each case ends
// with no QEMU process and no temp file left.
import { execa, type ResultPromise } from 'execa';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MissingToolError, UsageError } from '../../../src/errors.ts';
import { AcceleratorError, probeKvm } from '../../../src/runners/qemu/accel.ts';
import { VmBootError } from '../../../src/runners/qemu/boot.ts';
import { KernelError, locateKernel } from '../../../src/runners/qemu/kernel.ts';
import { findQemuTools, QEMU_BINARY } from '../../../src/runners/qemu/process.ts';
import { QemuRunner, type QemuRunnerOptions } from '../../../src/runners/qemu/runner.ts';
import { kernelEnv, leftovers, makeTempDir, podFor, qemuProcessesMentioning, SHARED_CACHE, testKernel, type TestKernel, tinyRoot } from './helpers.ts';

const hostHasBootKernel = existsSync('/boot/vmlinuz') || (existsSync('/boot') && readdirSync('/boot').some((n) => n.startsWith('vmlinuz-')));

let dir: string;
let root: string;
let workspace: string;
let kernel: TestKernel;

beforeAll(async () => {
  dir = await makeTempDir();
  root = await tinyRoot(dir);
  workspace = path.join(dir, 'workspace');
  await mkdir(path.join(workspace, 'melange-out'), { recursive: true });
  kernel = await testKernel();
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A fresh temp parent per case, so that leftovers are attributable. */
async function freshTemp(name: string): Promise<string> {
  const t = path.join(dir, `temp-${name}`);
  await mkdir(t);
  return t;
}

function runnerWith(tempDir: string, extra: Partial<QemuRunnerOptions>, logs: string[] = []): QemuRunner {
  return new QemuRunner({ artifactDir: SHARED_CACHE, env: kernelEnv(kernel), tempDir, log: (l) => logs.push(l), ...extra });
}

/** Live (not zombie: this machine's init reaps late) processes whose command line mentions `marker`. */
async function liveProcessesMentioning(marker: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'latin1').catch(() => '');
    if (/\) Z /.test(stat)) continue;
    const cmdline = (await readFile(`/proc/${name}/cmdline`, 'latin1').catch(() => '')).replaceAll('\0', ' ');
    if (cmdline.includes(marker)) found.push(`${name}: ${cmdline}`);
  }
  return found;
}

async function expectNothingLeft(tempDir: string): Promise<void> {
  expect(await qemuProcessesMentioning(tempDir)).toEqual([]);
  expect(await leftovers(tempDir)).toEqual([]);
}

describe('boots that fail', () => {
  it('gives up on a VM that never starts SSH, retries once, and shows the console tail', async () => {
    const temp = await freshTemp('hang');
    const logs: string[] = [];
    // panic=0 after our panic=-1: the kernel panics (no init) and then waits forever instead of rebooting.
    // 15 s per attempt: the panic comes ~2 s into a boot, later on a loaded machine.
    const runner = runnerWith(temp, { kernelArgs: ['rdinit=/nonexistent', 'panic=0'], bootTimeoutMs: 30_000, accel: 'tcg' }, logs);
    const err = await runner.start(podFor(root, workspace)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmBootError);
    const boot = err as VmBootError;
    expect(boot.message).toMatch(/did not start its SSH server within 30 s \(2 attempts/);
    expect(logs.some((l) => /retrying once/.test(l))).toBe(true);
    expect(boot.details.join('\n')).toMatch(/Kernel panic/);
    expect(boot.details.length).toBeLessThanOrEqual(41 + 10);
    await runner.terminate();
    await expectNothingLeft(temp);
  });

  it('reports a VM that stops during boot at once, without a retry', async () => {
    const temp = await freshTemp('exit');
    const logs: string[] = [];
    const runner = runnerWith(temp, { kernelArgs: ['rdinit=/nonexistent'], bootTimeoutMs: 120_000, accel: 'tcg' }, logs);
    const err = await runner.start(podFor(root, workspace)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmBootError);
    expect((err as VmBootError).message).toMatch(/stopped during boot/);
    expect((err as VmBootError).details.join('\n')).toMatch(/Kernel panic/);
    expect(logs.some((l) => /retrying/.test(l))).toBe(false);
    await expectNothingLeft(temp);
  });
});

describe('machine types', () => {
  it('boots the microvm machine too (with the host TSC rate on the kernel command line)', async () => {
    const temp = await freshTemp('microvm');
    const runner = runnerWith(temp, { machine: 'microvm', accel: 'tcg', bootTimeoutMs: 120_000, debug: true });
    try {
      await runner.start(podFor(root, workspace));
      const chunks: Buffer[] = [];
      expect(await runner.run(['/bin/cat', '/proc/cmdline'], { env: { PATH: '/bin' }, workdir: '/home/build', onOutput: (_s, c) => chunks.push(c) })).toBe(0);
      expect(Buffer.concat(chunks).toString()).toMatch(/tsc_early_khz=\d+/);
      const control = await runner.control(['sh', '-c', 'ls /sys/bus/virtio/drivers']);
      expect(control.stdout.toString()).toMatch(/virtio_blk/);
    } finally {
      await runner.terminate();
    }
    await expectNothingLeft(temp);
  });
});

describe('network', () => {
  it('is reachable from the guest when the pod allows it (the host is 10.0.2.2)', async () => {
    const temp = await freshTemp('network');
    let received = '';
    const server = net.createServer((socket) => socket.on('data', (c: Buffer) => (received += c.toString())));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const runner = runnerWith(temp, { accel: 'tcg', bootTimeoutMs: 120_000 });
    try {
      await runner.start(podFor(root, workspace, { network: true }));
      const out: Buffer[] = [];
      const code = await runner.run(['/bin/sh', '-c', `echo hello-host | busybox nc -w 3 10.0.2.2 ${port}; cat /etc/resolv.conf`], {
        env: { PATH: '/bin' },
        workdir: '/home/build',
        onOutput: (_s, c) => out.push(c),
      });
      expect(code).toBe(0);
      expect(received).toBe('hello-host\n');
      expect(Buffer.concat(out).toString()).toContain('nameserver 10.0.2.3');
    } finally {
      await runner.terminate();
      server.close();
    }
    await expectNothingLeft(temp);
  });
});

describe('bad input is refused before anything starts', () => {
  async function refused(name: string, extra: Partial<QemuRunnerOptions>, pod = podFor(root, workspace)): Promise<unknown> {
    const temp = await freshTemp(name);
    const runner = runnerWith(temp, extra);
    const err = await runner.start(pod).catch((e: unknown) => e);
    await runner.terminate();
    await expectNothingLeft(temp);
    return err;
  }

  it('no qemu-system-x86_64: names the package to install', async () => {
    const err = await findQemuTools(QEMU_BINARY, '/nonexistent-dir').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingToolError);
    expect((err as Error).message).toBe('qemu-system-x86_64 is not installed (apt-get install --no-install-recommends qemu-system-x86)');
    const viaRunner = await refused('no-qemu', { qemuBinary: path.join(dir, 'no-such-qemu') });
    expect(viaRunner).toBeInstanceOf(MissingToolError);
  });

  it('no kernel: says how to get one', async () => {
    const err = await refused('no-kernel', { kernel: path.join(dir, 'missing-vmlinuz') });
    expect(err).toBeInstanceOf(KernelError);
    expect((err as KernelError).message).toMatch(/kernel image .*missing-vmlinuz does not exist/);
    expect((err as KernelError).details.join('\n')).toMatch(/dpkg-deb -x/);
  });

  it('a file that is not a kernel', async () => {
    const notKernel = path.join(dir, 'not-a-kernel');
    await writeFile(notKernel, 'just text, not a bzImage\n'.repeat(100));
    const err = await refused('bad-kernel', { kernel: notKernel });
    expect((err as Error).message).toMatch(/is not a Linux kernel image/);
  });

  // Only meaningful on hosts without a kernel in /boot, such as this project's CI machines.
  it.skipIf(hostHasBootKernel)('no kernel anywhere on the host: says how to get one', async () => {
    // The directory scripts/fetch-kernel.sh fills is left out: this is the host without it.
    const err = await locateKernel({ env: {}, bootDirs: ['/boot'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelError);
    expect((err as KernelError).message).toMatch(/no kernel image/);
    expect((err as KernelError).details.join('\n')).toMatch(/scripts\/fetch-kernel.sh/);
  });

  it('an unreadable or bogus initramfs', async () => {
    const missing = await refused('initramfs-missing', { initramfs: path.join(dir, 'no-initramfs') });
    expect((missing as Error).message).toMatch(/--initramfs: cannot read initramfs .*no-initramfs \(ENOENT\)/);
    const bogus = path.join(dir, 'bogus.img');
    await writeFile(bogus, 'this is not an archive');
    const notArchive = await refused('initramfs-bogus', { initramfs: bogus });
    expect((notArchive as Error).message).toMatch(/is not an initramfs/);
  });

  // root reads any file, so only another user can see EACCES.
  it.skipIf(process.getuid?.() === 0)('an initramfs this user may not read', async () => {
    const unreadable = path.join(dir, 'unreadable.img');
    await writeFile(unreadable, Buffer.from([0x1f, 0x8b, 0, 0]));
    await chmod(unreadable, 0);
    const denied = await refused('initramfs-denied', { initramfs: unreadable });
    expect((denied as Error).message).toMatch(/EACCES/);
  });

  it('modules for another kernel version', async () => {
    const modules = path.join(dir, 'modules', '5.10.0-99-other');
    await mkdir(path.join(modules, 'kernel'), { recursive: true });
    await writeFile(path.join(modules, 'modules.dep'), '');
    const err = await refused('modules', { kernelModules: modules, env: { QEMU_KERNEL_IMAGE: kernel.image } });
    expect(err).toBeInstanceOf(KernelError);
    expect((err as Error).message).toMatch(/holds modules for kernel 5\.10\.0-99-other, but the kernel image .* is 6\./);
  });

  it('more memory than the host has', async () => {
    const err = await refused('memory', { memory: '100000G' });
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/--memory: 100000G is more than this host can give a VM/);
  });

  it('KVM requested but unusable', async (ctx) => {
    const tools = await findQemuTools();
    const probe = await probeKvm(tools, kernel.image, 'q35');
    // Where KVM works, asking for it is not an error; this project's hosts have a broken nested KVM.
    if (probe.usable) ctx.skip();
    const err = await refused('kvm', { accel: 'kvm' });
    expect(err).toBeInstanceOf(AcceleratorError);
    expect((err as Error).message).toMatch(/--accel kvm: KVM is not usable/);
  });

  it('a build root that is not one directory', async () => {
    const pod = podFor(root, workspace);
    const err = await refused('root', {}, { ...pod, root: { description: 'host (not hermetic)', mounts: pod.root.mounts } });
    expect((err as Error).message).toMatch(/needs the build root as one directory/);
  });
});

describe('Ctrl-C', () => {
  const script = fileURLToPath(new URL('./fixtures/interrupted-build.ts', import.meta.url));

  async function interrupt(name: string, when: (line: string, temp: string) => Promise<boolean>, signals = 1): Promise<{ output: string; temp: string }> {
    const temp = await freshTemp(name);
    const child: ResultPromise = execa('node', [script, root, workspace, SHARED_CACHE], {
      env: { ...kernelEnv(kernel), TMPDIR: temp },
      reject: false,
      buffer: false,
      stdout: 'pipe',
      stderr: 'pipe',
    });
    let output = '';
    let sent = false;
    // One check at a time: two overlapping checks could both send, and a second SIGINT means "exit at once".
    let checking = false;
    const onLine = async (text: string): Promise<void> => {
      output += text;
      if (sent || checking) return;
      checking = true;
      try {
        if (await when(output, temp)) {
          sent = true;
          for (let i = 0; i < signals; i++) child.kill('SIGINT');
        }
      } finally {
        checking = false;
      }
    };
    child.stdout?.on('data', (c: Buffer) => void onLine(c.toString()));
    child.stderr?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    // Polls for the QEMU process too, which prints nothing when it appears.
    const poll = setInterval(() => void onLine(''), 100);
    const result = await child;
    clearInterval(poll);
    expect(sent).toBe(true);
    expect(result.exitCode).toBe(130);
    return { output, temp };
  }

  // Every moment of a start: before QEMU exists, as it is spawned, early in its boot, late in it (the SSH
  // handshakes and the upload), then during a step. Each leaves no live process and nothing in TMPDIR.
  let qemuSeen = 0;
  const moments: [string, (out: string, temp: string) => Promise<boolean>][] = [
    ['while preparing', async (out) => out.includes('phase: starting')],
    ['as QEMU is spawned', async (out) => out.includes('log: booting')],
    ['early in the boot', async (_out, t) => (await qemuProcessesMentioning(t)).length > 0],
    [
      'late in the boot',
      async (_out, t) => {
        if ((await qemuProcessesMentioning(t)).length === 0) return false;
        qemuSeen ||= performance.now();
        return performance.now() - qemuSeen > 2500;
      },
    ],
  ];
  for (const [moment, when] of moments) {
    it(`${moment} leaves no process and no temp files`, async () => {
      qemuSeen = 0;
      const { output, temp } = await interrupt(`sigint-${moment.replaceAll(' ', '-')}`, when);
      expect(output).toMatch(/phase: starting/);
      expect(output).toMatch(/phase: terminated/);
      await expectNothingLeft(temp);
      expect(await liveProcessesMentioning(temp)).toEqual([]);
    });
  }

  it('twice (exit at once) during the boot still leaves no process and no temp files', async () => {
    const { output, temp } = await interrupt('sigint-twice', async (_out, t) => (await qemuProcessesMentioning(t)).length > 0, 2);
    // Which path wins is a race: the second signal exits at once, unless the first one's cleanup was already
    // done by then. Either way nothing may be left.
    expect(output).toMatch(/SIGINT: stopping and cleaning up/);
    await expectNothingLeft(temp);
    expect(await liveProcessesMentioning(temp)).toEqual([]);
  });

  it('during a step leaves no QEMU process and no temp files', async () => {
    const { output, temp } = await interrupt('sigint-step', async (out) => out.includes('phase: step-running'));
    expect(output).toMatch(/phase: started/);
    expect(output).not.toMatch(/phase: step-finished/);
    expect(output).toMatch(/error: Interrupted: interrupted by SIGINT/);
    await expectNothingLeft(temp);
  });
});
