// The virtual machine's shape: machine type and its devices, vCPUs and memory (from the flags or the recipe's
// resources, capped to what this host can give), and the kernel command line. Plain data in, argument lists out.
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { execa } from 'execa';
import { UsageError } from '../../errors.ts';
import type { WantedModule } from './kernel.ts';

export const MACHINES = ['q35', 'microvm'] as const;
export type MachineType = (typeof MACHINES)[number];

export interface MachineLayout {
  /** `-M ...` and anything else the machine type needs. */
  args: string[];
  netDevice: string;
  blockDevice: string;
  /** Kernel command line additions. */
  kernelArgs: string[];
  /** Modules the guest loads for these devices. */
  modules: WantedModule[];
}

/**
 * Boot-time savings measured under TCG (see docs/qemu-runner.md): no crypto self-tests, no timer sanity checks
 * against the emulated PIT, expedited RCU grace periods, and no probing for a PS/2 controller nobody uses.
 */
export const FAST_BOOT_ARGS = [
  'quiet',
  'panic=-1',
  'tsc=reliable',
  'no_timer_check',
  'cryptomgr.notests',
  'rcupdate.rcu_expedited=1',
  'i8042.noaux',
  'i8042.nomux',
  'i8042.nopnp',
  'i8042.dumbkbd',
];

const COMMON_MODULES: WantedModule[] = [
  { name: 'virtio_blk' },
  { name: 'virtio_net' },
  { name: 'ext4' },
];

export function machineLayout(machine: MachineType, tscKhz: number | undefined): MachineLayout {
  if (machine === 'microvm') {
    // microvm has neither HPET nor a PM timer to calibrate the TSC against; without the host's TSC rate the
    // guest hangs in about a quarter of boots.
    return {
      args: ['-M', 'microvm,x-option-roms=off,acpi=on,rtc=on,pit=on,pic=on'],
      netDevice: 'virtio-net-device',
      blockDevice: 'virtio-blk-device',
      kernelArgs: tscKhz ? [`tsc_early_khz=${tscKhz}`] : [],
      modules: [{ name: 'virtio_mmio' }, ...COMMON_MODULES],
    };
  }
  return {
    args: ['-M', 'q35'],
    netDevice: 'virtio-net-pci',
    blockDevice: 'virtio-blk-pci',
    kernelArgs: [],
    modules: [{ name: 'virtio_pci' }, ...COMMON_MODULES],
  };
}

/**
 * The host's TSC rate in kHz. Under TCG the guest's TSC runs at the host's rate. The kernel's own calibration
 * (its log) is the best source; /proc/cpuinfo's "cpu MHz" equals it on hosts without frequency scaling
 * (virtual machines, constant_tsc).
 */
export async function hostTscKhz(): Promise<number | undefined> {
  const fromSysfs = await readFile('/sys/devices/system/cpu/cpu0/tsc_freq_khz', 'utf8').catch(() => undefined);
  if (fromSysfs && Number(fromSysfs) > 0) return Math.round(Number(fromSysfs));
  const dmesg = await execa('dmesg', [], { reject: false, timeout: 2000 });
  if (dmesg.exitCode === 0) {
    const text = String(dmesg.stdout);
    const refined = /tsc: Refined TSC clocksource calibration: ([\d.]+) MHz/.exec(text);
    const detected = /tsc: Detected ([\d.]+) MHz/.exec(text);
    const mhz = refined?.[1] ?? detected?.[1];
    if (mhz) return Math.round(Number(mhz) * 1000);
  }
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1];
  return mhz && /\bconstant_tsc\b/.test(cpuinfo) ? Math.round(Number(mhz) * 1000) : undefined;
}

const UNITS: Record<string, number> = { '': 1, k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 };

/**
 * Memory in MiB from `2048`, `2048M`, `2G`, `2Gi`, `2GiB`, `512Mi`... A bare number is MiB, as for QEMU's -m.
 * Decimal (`2G`) and binary (`2Gi`) suffixes are both read as binary: the difference does not matter for a VM.
 */
export function parseMemory(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$/i.exec(text);
  if (!m) throw new UsageError(`${flag}: "${text}" is not a memory size (e.g. 2048M, 4G, 2Gi)`);
  const mib = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  if (!(mib >= 64)) throw new UsageError(`${flag}: ${text} is too little memory for the VM (at least 64M)`);
  return Math.floor(mib);
}

/** vCPUs from `2`, `1.5` or Kubernetes-style `500m`, rounded up. */
export function parseCpu(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)(m?)\s*$/.exec(text);
  if (!m) throw new UsageError(`${flag}: "${text}" is not a CPU count (e.g. 2, 1.5, 500m)`);
  const cpus = Math.ceil(Number(m[1]) / (m[2] === 'm' ? 1000 : 1));
  if (cpus < 1) throw new UsageError(`${flag}: ${text} is less than one CPU`);
  return cpus;
}

/** Physical memory, or the cgroup's limit when that is lower, in MiB. */
/**
 * The cgroup v2 directories that bound this process: its own and every ancestor (a limit anywhere above
 * applies too), from /proc/self/cgroup; just the mount root when that cannot be read.
 */
function cgroupDirs(controller?: string): string[] {
  let rel = '/';
  try {
    const text = readFileSync('/proc/self/cgroup', 'utf8');
    // cgroup v1 (hybrid hosts): "N:memory:/path" under /sys/fs/cgroup/memory; v2: "0::/path".
    const line = controller ? new RegExp(`^\\d+:(?:[^:]*,)?${controller}(?:,[^:]*)?:(/.*)$`, 'm').exec(text) : null;
    rel = line?.[1] ?? /^0::(\/.*)$/m.exec(text)?.[1] ?? '/';
    if (line) return ancestors(rel).map((p) => `/sys/fs/cgroup/${controller === 'cpu' ? 'cpu,cpuacct' : controller}${p === '/' ? '' : p}`);
  } catch {
    // not Linux
  }
  return ancestors(rel).map((p) => `/sys/fs/cgroup${p === '/' ? '' : p}`);
}

function ancestors(rel: string): string[] {
  const out: string[] = [];
  for (let p = rel; ; p = p.slice(0, p.lastIndexOf('/')) || '/') {
    out.push(p);
    if (p === '/') break;
  }
  return out;
}

export async function hostMemoryMiB(): Promise<number> {
  let bytes = os.totalmem();
  for (const file of [...cgroupDirs().map((d) => `${d}/memory.max`), ...cgroupDirs('memory').map((d) => `${d}/memory.limit_in_bytes`)]) {
    const limit = Number((await readFile(file, 'utf8').catch(() => 'max')).trim());
    if (Number.isFinite(limit) && limit > 0 && limit < bytes) bytes = limit;
  }
  return Math.floor(bytes / (1024 * 1024));
}

/** CPUs this process may use: the affinity mask, bounded by any cgroup `cpu.max` quota (rounded up). */
export function hostCpus(): number {
  let cpus = os.availableParallelism();
  const v1 = cgroupDirs('cpu').map((d) => [`${d}/cpu.cfs_quota_us`, `${d}/cpu.cfs_period_us`]);
  for (const [quotaFile, periodFile] of [...cgroupDirs().map((d) => [`${d}/cpu.max`, undefined]), ...v1]) {
    let text: string;
    try {
      text = readFileSync(quotaFile!, 'utf8') + (periodFile ? ` ${readFileSync(periodFile, 'utf8')}` : '');
    } catch {
      continue;
    }
    const [quota, period] = text.trim().split(/\s+/);
    if (quota === '-1') continue;
    if (quota === undefined || quota === 'max' || !period) continue;
    const limit = Math.max(1, Math.ceil(Number(quota) / Number(period)));
    if (Number.isFinite(limit) && limit < cpus) cpus = limit;
  }
  return cpus;
}

export interface Resources {
  cpus: number;
  memoryMiB: number;
}

export interface ResourceRequest {
  /** --cpu / --memory: exceeding the host is an error. */
  cpuFlag?: string;
  memoryFlag?: string;
  /** package.resources: capped to the host, with a note. */
  resources: { cpu?: string; memory?: string };
  host: { cpus: number; memoryMiB: number };
  log: (line: string) => void;
}

/** Default guest memory: enough for compilers, and lazily allocated by QEMU so unused memory costs nothing. */
export const DEFAULT_MEMORY_MIB = 2048;

export function resolveResources(req: ResourceRequest): Resources {
  const { host } = req;
  // Leave the host room for QEMU itself and the builder.
  const memoryCeiling = Math.max(256, host.memoryMiB - 256);
  let memoryMiB: number;
  if (req.memoryFlag !== undefined) {
    memoryMiB = parseMemory(req.memoryFlag, '--memory');
    if (memoryMiB > memoryCeiling) {
      throw new UsageError(`--memory: ${req.memoryFlag} is more than this host can give a VM (${memoryCeiling} MiB of ${host.memoryMiB} MiB)`);
    }
  } else if (req.resources.memory !== undefined) {
    memoryMiB = parseMemory(req.resources.memory, 'package.resources.memory');
    if (memoryMiB > memoryCeiling) {
      req.log(`package.resources.memory ${req.resources.memory} capped to ${memoryCeiling} MiB (this host's limit)`);
      memoryMiB = memoryCeiling;
    }
  } else {
    memoryMiB = Math.min(DEFAULT_MEMORY_MIB, memoryCeiling);
  }
  let cpus: number;
  if (req.cpuFlag !== undefined) {
    cpus = parseCpu(req.cpuFlag, '--cpu');
    if (cpus > host.cpus) throw new UsageError(`--cpu: ${req.cpuFlag} is more than this host's ${host.cpus} CPUs`);
  } else if (req.resources.cpu !== undefined) {
    cpus = parseCpu(req.resources.cpu, 'package.resources.cpu');
    if (cpus > host.cpus) {
      req.log(`package.resources.cpu ${req.resources.cpu} capped to ${host.cpus} (this host's CPUs)`);
      cpus = host.cpus;
    }
  } else {
    cpus = host.cpus;
  }
  return { cpus, memoryMiB };
}
