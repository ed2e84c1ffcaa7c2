// Choosing the accelerator. /dev/kvm existing proves little: on nested hosts KVM guests can hang silently or
// QEMU can abort while setting up the vCPU. So KVM is only trusted after a probe boot printed the kernel's first
// console line within a short deadline; the verdict is cached for the rest of this host boot.
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BuilderError } from '../../errors.ts';
import { machineLayout, type MachineType } from './machine.ts';
import { installArtifact, usableArtifact } from './seal.ts';
import { type QemuTools, spawnQemu } from './process.ts';

export const ACCELERATORS = ['kvm', 'tcg', 'auto'] as const;
export type AcceleratorRequest = (typeof ACCELERATORS)[number];
export type Accelerator = 'kvm' | 'tcg';

/** A KVM guest prints its first line in well under a second; a hung one never does. */
export const KVM_PROBE_DEADLINE_MS = 3000;
const PROBE_FORMAT = 1;

export interface ProbeResult {
  usable: boolean;
  reason: string;
}

export class AcceleratorError extends BuilderError {
  override name = 'AcceleratorError';
}

/** Why /dev/kvm cannot be used by this process, or null when it can be opened. */
export async function kvmDeviceProblem(device = '/dev/kvm'): Promise<string | null> {
  try {
    await access(device, fsConstants.R_OK | fsConstants.W_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `${device} does not exist (no KVM on this host)` : `${device} is not accessible (${code ?? 'error'})`;
  }
}

/** Boots the kernel under KVM with no initramfs and waits for "Linux version" on the serial console. */
export async function probeKvm(tools: QemuTools, kernel: string, machine: MachineType, deadlineMs = KVM_PROBE_DEADLINE_MS, signal?: AbortSignal): Promise<ProbeResult> {
  const layout = machineLayout(machine, undefined);
  const proc = spawnQemu(
    tools,
    [
      '-accel', 'kvm', ...layout.args, '-cpu', 'host', '-smp', '1', '-m', '256',
      '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-display', 'none',
      '-serial', 'stdio', '-kernel', kernel, '-append', 'console=ttyS0 panic=-1 loglevel=4',
    ],
    { stdout: true },
  );
  let seen = '';
  const printed = new Promise<boolean>((resolve) => {
    proc.stdout?.on('data', (chunk: Buffer) => {
      seen = (seen + chunk.toString('latin1')).slice(-4096);
      if (seen.includes('Linux version')) resolve(true);
    });
    void proc.exited.then(() => resolve(false));
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), deadlineMs);
  });
  const onAbort = () => proc.kill('SIGKILL');
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const ok = await Promise.race([printed, timedOut]);
    if (ok) return { usable: true, reason: 'a KVM guest booted' };
    if (proc.hasExited()) {
      const why = proc.stderrText().split('\n').find((l) => l.trim() !== '') ?? 'QEMU exited without output';
      return { usable: false, reason: `QEMU failed under KVM: ${why}` };
    }
    return { usable: false, reason: `a KVM guest printed nothing within ${(deadlineMs / 1000).toFixed(1)} s (it hangs on this host)` };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    proc.kill('SIGKILL');
    await proc.exited;
  }
}

interface CachedProbe extends ProbeResult {
  format: number;
  key: string;
}

/** What a probe verdict depends on: this host boot, this QEMU binary, this machine type. */
async function probeKey(tools: QemuTools, machine: MachineType): Promise<string> {
  const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();
  const st = await stat(tools.qemu);
  return `${bootId} ${tools.qemu} ${st.size} ${Math.floor(st.mtimeMs)} ${machine}`;
}

async function cachedProbe(cacheFile: string, key: string): Promise<ProbeResult | undefined> {
  try {
    const data = JSON.parse(await readFile(cacheFile, 'utf8')) as CachedProbe;
    if (data.format === PROBE_FORMAT && data.key === key) return { usable: data.usable, reason: data.reason };
  } catch {
    // no usable cache entry
  }
  return undefined;
}

async function storeProbe(cacheFile: string, key: string, result: ProbeResult): Promise<void> {
  await mkdir(dirname(cacheFile), { recursive: true });
  const temp = `${cacheFile}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify({ format: PROBE_FORMAT, key, ...result } satisfies CachedProbe));
  await installArtifact(temp, cacheFile);
}

export interface ChooseOptions {
  requested: AcceleratorRequest;
  tools: QemuTools;
  kernel: string;
  machine: MachineType;
  /** The sealed VM artifact directory (the verdict is kept there). */
  artifactDir: string;
  log: (line: string) => void;
  signal?: AbortSignal;
  deadlineMs?: number;
}

/** tcg → tcg; kvm → kvm or an error saying why not; auto → kvm when it provably works, else tcg. */
export async function chooseAccelerator(options: ChooseOptions): Promise<Accelerator> {
  const { requested, log } = options;
  if (requested === 'tcg') {
    log('accelerator: tcg (requested)');
    return 'tcg';
  }
  const deviceProblem = await kvmDeviceProblem();
  if (deviceProblem !== null) {
    if (requested === 'kvm') throw new AcceleratorError(`--accel kvm: KVM is not usable: ${deviceProblem}`);
    log(`accelerator: tcg (${deviceProblem})`);
    return 'tcg';
  }
  const cacheFile = join(options.artifactDir, 'kvm-probe.json');
  const key = await probeKey(options.tools, options.machine);
  let result = (await usableArtifact(cacheFile, 'KVM probe verdict', log, options.signal)) ? await cachedProbe(cacheFile, key) : undefined;
  const cached = result !== undefined;
  if (!result) {
    result = await probeKvm(options.tools, options.kernel, options.machine, options.deadlineMs, options.signal);
    if (options.signal?.aborted) throw new AcceleratorError('KVM probe interrupted', { cause: options.signal.reason });
    await storeProbe(cacheFile, key, result).catch(() => undefined);
  }
  const how = cached ? ' (probe result cached for this host boot)' : '';
  if (result.usable) {
    log(`accelerator: kvm (${result.reason})${how}`);
    return 'kvm';
  }
  if (requested === 'kvm') throw new AcceleratorError(`--accel kvm: KVM is not usable here: ${result.reason}`);
  log(`accelerator: tcg — KVM unusable: ${result.reason}${how}`);
  return 'tcg';
}
