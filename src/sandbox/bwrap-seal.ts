// The flags that seal a bwrap sandbox: every namespace unshared (network only when allowed), a fixed uid/gid,
// an explicit capability set and the seccomp filter. Build steps (the Bubblewrap runner) and install
// scriptlets (environment/apk) both go through this, so every sandbox is sealed alike.
import { BuilderError } from '../errors.ts';
import { buildSeccompFilter, hostSeccompArch } from './seccomp.ts';

/** The descriptor bwrap reads the seccomp program from; callers put `seccomp` at this index of `stdio`. */
export const SECCOMP_FD = 3;

const CAPABILITIES = new Set([
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
]);

/** Docker's default set, given to a command that runs as root inside the sandbox. */
const DEFAULT_ROOT_CAPABILITIES = [
  'CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP',
  'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE',
];

export interface SandboxSeal {
  /** Names the sandbox in error messages (the package being built or installed). */
  label: string;
  runAs: { uid: number; gid: number };
  network: boolean;
  capabilities: { add: readonly string[]; drop: readonly string[] };
  /** `--new-session` (detach from the terminal); left out only for interactive debugging. */
  newSession: boolean;
}

/** `net_raw`, `NET_RAW`, `CAP_NET_RAW` → `CAP_NET_RAW`; `all` → `ALL`. */
function capabilityArg(name: string, label: string): string {
  const upper = name.trim().toUpperCase();
  if (upper === 'ALL') return 'ALL';
  const bare = upper.startsWith('CAP_') ? upper.slice(4) : upper;
  if (!CAPABILITIES.has(bare)) {
    throw new BuilderError(`${label}: unknown capability "${name}" (expected a Linux capability name or ALL)`);
  }
  return `CAP_${bare}`;
}

/**
 * bwrap starts from "all caps" when it runs as root and from none otherwise, so the set is pinned explicitly:
 * drop everything, then grant the base set (Docker's defaults for root, nothing for another user), the
 * additions and the drops, in that order (bwrap applies them left to right, ALL included).
 */
function capabilityArgs(seal: SandboxSeal): string[] {
  const base = seal.runAs.uid === 0 ? DEFAULT_ROOT_CAPABILITIES : [];
  const args = ['--cap-drop', 'ALL'];
  for (const cap of [...base, ...seal.capabilities.add]) args.push('--cap-add', capabilityArg(cap, seal.label));
  for (const cap of seal.capabilities.drop) args.push('--cap-drop', capabilityArg(cap, seal.label));
  return args;
}

/**
 * The capabilities a command ends up with (every set: bounding, permitted, effective, inheritable, ambient),
 * as bwrap computes them from capabilityArgs: the base set, plus the additions, minus the drops, `ALL`
 * included. Names are `CAP_*`; `ALL` stands alone for every capability the kernel has. For sandboxes that
 * apply the set themselves (the QEMU runner's guest).
 */
export function capabilitySet(seal: Pick<SandboxSeal, 'label' | 'runAs' | 'capabilities'>): string[] {
  const base = seal.runAs.uid === 0 ? DEFAULT_ROOT_CAPABILITIES : [];
  let all = false;
  const set = new Set<string>();
  for (const cap of [...base, ...seal.capabilities.add]) {
    const arg = capabilityArg(cap, seal.label);
    if (arg === 'ALL') all = true;
    else set.add(arg);
  }
  const dropped = new Set<string>();
  for (const cap of seal.capabilities.drop) {
    const arg = capabilityArg(cap, seal.label);
    if (arg === 'ALL') return [];
    dropped.add(arg);
    set.delete(arg);
  }
  if (all) {
    if (dropped.size === 0) return ['ALL'];
    return [...CAPABILITIES].map((c) => `CAP_${c}`).filter((c) => !dropped.has(c));
  }
  return [...set];
}

/**
 * The sealing flags (no mounts, no environment, no command) and the seccomp program to hand bwrap on
 * SECCOMP_FD (null on a host architecture without a known syscall table). Ends with `--clearenv`.
 */
export function sealArgs(seal: SandboxSeal): { args: string[]; seccomp: Buffer | null } {
  for (const [id, value] of [['uid', seal.runAs.uid], ['gid', seal.runAs.gid]] as const) {
    if (!Number.isInteger(value) || value < 0) throw new BuilderError(`${seal.label}: invalid run-as ${id} ${value}`);
  }
  const arch = hostSeccompArch();
  const seccomp = arch === undefined ? null : buildSeccompFilter(arch);
  const args = [
    '--unshare-all',
    '--unshare-user',
    ...(seal.network ? ['--share-net'] : []),
    '--die-with-parent',
    ...(seal.newSession ? ['--new-session'] : []),
    '--uid', String(seal.runAs.uid),
    '--gid', String(seal.runAs.gid),
    '--hostname', 'builder',
    ...capabilityArgs(seal),
    ...(seccomp === null ? [] : ['--seccomp', String(SECCOMP_FD)]),
    '--clearenv',
  ];
  return { args, seccomp };
}
