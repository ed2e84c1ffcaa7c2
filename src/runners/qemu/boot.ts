// Booting the VM: the QEMU command line, then readiness (the guest's SSH banner) under a deadline, with one
// automatic retry of a boot that hangs. A failed boot ends with the last lines of the guest console.
import { open } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { BuilderError } from '../../errors.ts';
import type { Accelerator } from './accel.ts';
import type { MachineLayout, Resources } from './machine.ts';
import { type QemuProcess, type QemuTools, spawnQemu } from './process.ts';
import { waitForBanner } from './ssh.ts';

export const CONSOLE_TAIL_LINES = 40;
/** A TCG boot takes 3-4 s here; a first attempt this long without a banner is treated as hung. */
export const HANG_AFTER_MS = 20_000;
const PORT_RETRIES = 5;

export class VmBootError extends BuilderError {
  override name = 'VmBootError';
}

export interface BootPlan {
  tools: QemuTools;
  accel: Accelerator;
  layout: MachineLayout;
  resources: Resources;
  kernel: string;
  /** A path (for the runner: /proc/<our pid>/fd/<N>, the nameless file it holds open). */
  initrd: string;
  rootImage: string;
  network: boolean;
  /**
   * With the network on: when present, the only TCP destinations the guest reaches (the user-mode network
   * runs `command` per connection, host address and port appended); everything else is dropped.
   */
  allowed?: { forwards: GuestForward[]; command: string[] };
  /** Appended to the kernel command line (after ours, so they win). */
  kernelArgs: string[];
  /** Private directory for console logs and QEMU's snapshot overlay. */
  workDir: string;
  /** qemu's -cpu model (`--cpumodel`); default host with KVM, max with TCG. */
  cpuModel?: string;
}

export function kernelCommandLine(plan: Pick<BootPlan, 'layout' | 'kernelArgs'>, fastBootArgs: string[]): string {
  return ['console=ttyS0', ...fastBootArgs, ...plan.layout.kernelArgs, ...plan.kernelArgs].join(' ');
}

/** A destination the guest may connect to (as it addresses it) and where the host connects instead. */
export interface GuestForward {
  addr: string;
  port: number;
  hostAddr: string;
}

/** The user-mode network's host address while --network-allow is enforced. */
export const ALLOW_LIST_GATEWAY = '10.0.2.254';

/** QEMU's option syntax: a comma inside a value is written twice. */
function optionValue(text: string): string {
  return text.replaceAll(',', ',,');
}

export function qemuArgs(plan: BootPlan, port: number, consoleLog: string, fastBootArgs: string[]): string[] {
  const pci = plan.layout.netDevice.endsWith('-pci');
  const restricted = !plan.network || plan.allowed !== undefined;
  const netdev = [
    'user',
    'id=n0',
    // restrict=on: the guest reaches nothing but the forwarded port (and, with an allow list, its entries).
    `restrict=${restricted ? 'on' : 'off'}`,
    `hostfwd=tcp:127.0.0.1:${port}-:22`,
    // The user-mode network refuses to forward its own host address, so with a list that address moves
    // aside and 10.0.2.2 becomes an ordinary forwarded destination.
    ...(plan.network && plan.allowed ? [`host=${ALLOW_LIST_GATEWAY}`] : []),
    ...(plan.network && plan.allowed
      ? plan.allowed.forwards.map((f) => `guestfwd=tcp:${f.addr}:${f.port}-cmd:${optionValue([...plan.allowed!.command, f.hostAddr, String(f.port)].join(' '))}`)
      : []),
  ].join(',');
  return [
    '-accel', plan.accel,
    ...plan.layout.args,
    '-cpu', plan.cpuModel ?? (plan.accel === 'kvm' ? 'host' : 'max'),
    '-smp', String(plan.resources.cpus),
    '-m', `${plan.resources.memoryMiB}M`,
    '-nodefaults', '-no-user-config', '-no-reboot', '-display', 'none',
    '-serial', `file:${consoleLog}`,
    '-kernel', plan.kernel,
    '-initrd', plan.initrd,
    '-append', kernelCommandLine(plan, fastBootArgs),
    '-netdev', netdev,
    // A conservative MTU: tunnelled or VPN'd host links drop full-size frames silently.
    '-device', `${plan.layout.netDevice},netdev=n0,host_mtu=1400${pci ? ',romfile=' : ''}`,
    '-drive', `file=${plan.rootImage},format=raw,if=none,id=root,snapshot=on,cache=unsafe`,
    '-device', `${plan.layout.blockDevice},drive=root`,
  ];
}

/** A free loopback port: bound and released, so a race is possible and is retried by the caller. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The last `lines` lines of a console log, without terminal escape sequences. */
export async function consoleTail(path: string, lines = CONSOLE_TAIL_LINES): Promise<string[]> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return [];
  }
  try {
    const { size } = await fh.stat();
    const length = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, size - length);
    const text = buf
      .toString('utf8')
      .replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '')
      .replace(/\r/g, '');
    return text.split('\n').filter((l) => l.trim() !== '').slice(-lines);
  } finally {
    await fh.close();
  }
}

export interface BootedVm {
  process: QemuProcess;
  port: number;
  /** Connected to the guest's SSH server, banner already received (pushed back for ssh2). */
  socket: net.Socket;
  consoleLog: string;
  attempts: number;
  args: string[];
}

export interface BootOptions {
  timeoutMs: number;
  fastBootArgs: string[];
  log: (line: string) => void;
  signal?: AbortSignal;
}

type Attempt = { ok: true; vm: BootedVm } | { ok: false; hung: boolean; portBusy: boolean; proc: QemuProcess; consoleLog: string };

async function attemptBoot(plan: BootPlan, index: number, deadline: number, options: BootOptions): Promise<Attempt> {
  const port = await freePort();
  const consoleLog = join(plan.workDir, `console-${index}.log`);
  const args = qemuArgs(plan, port, consoleLog, options.fastBootArgs);
  const proc = spawnQemu(plan.tools, args, { env: { TMPDIR: plan.workDir } });
  const socket = await waitForBanner({ port, deadline, stopped: proc.hasExited, signal: options.signal });
  if (socket) return { ok: true, vm: { process: proc, port, socket, consoleLog, attempts: index, args } };
  const exitedEarly = proc.hasExited();
  await proc.stop(1000);
  const portBusy = exitedEarly && /host forwarding rule|Could not set up host forwarding/i.test(proc.stderrText());
  return { ok: false, hung: !exitedEarly, portBusy, proc, consoleLog };
}

/**
 * Starts QEMU and waits for the guest's SSH banner. A first attempt that shows no banner within
 * min(HANG_AFTER_MS, timeout/2) is killed and retried once with the time left; a VM that exits is not retried
 * (that is deterministic), except when the forwarded port was taken in the meantime.
 */
export async function bootVm(plan: BootPlan, options: BootOptions): Promise<BootedVm> {
  const started = performance.now();
  const finalDeadline = started + options.timeoutMs;
  let hangs = 0;
  let portRetries = 0;
  for (let index = 1; ; index++) {
    if (options.signal?.aborted) throw new VmBootError('VM boot interrupted', { cause: options.signal.reason });
    const deadline = hangs === 0 ? Math.min(finalDeadline, started + Math.min(HANG_AFTER_MS, options.timeoutMs / 2)) : finalDeadline;
    const result = await attemptBoot(plan, index, deadline, options);
    if (result.ok) return result.vm;
    if (options.signal?.aborted) throw new VmBootError('VM boot interrupted', { cause: options.signal.reason });
    if (result.portBusy && portRetries < PORT_RETRIES) {
      portRetries++;
      continue;
    }
    const tail = await consoleTail(result.consoleLog);
    const stderr = result.proc.stderrText();
    const details = [...(tail.length > 0 ? ['last lines of the guest console:', ...tail.map((l) => `  ${l}`)] : ['the guest console is empty'])];
    if (stderr) details.push('QEMU said:', ...stderr.split('\n').map((l) => `  ${l}`));
    if (result.hung && hangs === 0 && performance.now() < finalDeadline) {
      hangs++;
      options.log(`VM boot attempt ${index} showed no SSH server within ${((performance.now() - started) / 1000).toFixed(1)} s; retrying once`);
      continue;
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const status = await result.proc.exited;
    const what = result.hung
      ? `the VM did not start its SSH server within ${(options.timeoutMs / 1000).toFixed(0)} s (${index} attempt${index > 1 ? 's' : ''}, ${seconds} s)`
      : `the VM stopped during boot after ${seconds} s (QEMU exit ${status.code ?? status.signal ?? 'unknown'})`;
    throw new VmBootError(what, { details });
  }
}
