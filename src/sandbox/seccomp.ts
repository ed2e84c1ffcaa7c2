// Seccomp for the Bubblewrap runner: a classic-BPF program in the kernel's `struct sock_filter` layout, loaded by bwrap via --seccomp.

/** Docker's default deny list (see the runner notes); syscalls an architecture lacks are simply absent. */
const DENIED_SYSCALLS: Record<SeccompArch, Record<string, number>> = {
  x86_64: {
    acct: 163, add_key: 248, bpf: 321, clock_adjtime: 305, clock_settime: 227, create_module: 174,
    delete_module: 176, finit_module: 313, get_kernel_syms: 177, get_mempolicy: 239, init_module: 175,
    ioperm: 173, iopl: 172, kcmp: 312, kexec_file_load: 320, kexec_load: 246, keyctl: 250,
    lookup_dcookie: 212, mbind: 237, mount: 165, move_pages: 279, name_to_handle_at: 303, nfsservctl: 180,
    open_by_handle_at: 304, perf_event_open: 298, pivot_root: 155, process_vm_readv: 310,
    process_vm_writev: 311, ptrace: 101, query_module: 178, quotactl: 179, reboot: 169, request_key: 249,
    set_mempolicy: 238, setns: 308, settimeofday: 164, swapon: 167, swapoff: 168, sysfs: 139, _sysctl: 156,
    umount2: 166, unshare: 272, uselib: 134, userfaultfd: 323, ustat: 136,
  },
  // The asm-generic table, which arm64 uses for its native ABI.
  aarch64: {
    acct: 89, add_key: 217, bpf: 280, clock_adjtime: 266, clock_settime: 112, delete_module: 106,
    finit_module: 273, get_mempolicy: 236, init_module: 105, kcmp: 272, kexec_file_load: 294, kexec_load: 104,
    keyctl: 219, lookup_dcookie: 18, mbind: 235, mount: 40, move_pages: 239, name_to_handle_at: 264,
    nfsservctl: 42, open_by_handle_at: 265, perf_event_open: 241, pivot_root: 41, process_vm_readv: 270,
    process_vm_writev: 271, ptrace: 117, quotactl: 60, reboot: 142, request_key: 218, set_mempolicy: 237,
    setns: 268, settimeofday: 170, swapon: 224, swapoff: 225, umount2: 39, unshare: 97, userfaultfd: 282,
  },
};

export type SeccompArch = 'x86_64' | 'aarch64';

const ARCH_PARAMS: Record<SeccompArch, { auditArch: number; clone: number; clone3: number; x32: boolean }> = {
  x86_64: { auditArch: 0xc000003e, clone: 56, clone3: 435, x32: true },
  aarch64: { auditArch: 0xc00000b7, clone: 220, clone3: 435, x32: false },
};

const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_JGE_K = 0x35;
const BPF_JSET_K = 0x45;
const BPF_RET_K = 0x06;
const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const EPERM = 1;
const ENOSYS = 38;
const X32_SYSCALL_BIT = 0x40000000;
/** CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (CLONE_NEWTIME's bit is the exit signal in clone()). */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;
/** Offsets in struct seccomp_data: nr, arch, then args[0] (its low word first on little-endian hosts). */
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const OFFSET_ARG0_LOW = 16;

/** The seccomp architecture of this Node process, or undefined when no syscall table is known for it. */
export function hostSeccompArch(nodeArch: string = process.arch): SeccompArch | undefined {
  if (nodeArch === 'x64') return 'x86_64';
  if (nodeArch === 'arm64') return 'aarch64';
  return undefined;
}

/**
 * The filter: kill foreign-architecture (and x32) syscalls outright, since the deny list is only valid for one
 * syscall table; EPERM for the denied syscalls and for clone() creating namespaces (so the `unshare` ban cannot
 * be sidestepped); ENOSYS for clone3, whose flags sit behind a pointer BPF cannot follow, which makes libc fall
 * back to clone(); allow everything else.
 */
export function buildSeccompFilter(arch: SeccompArch): Buffer {
  const params = ARCH_PARAMS[arch];
  const denied = Object.values(DENIED_SYSCALLS[arch]);
  type Insn = { code: number; jt: number; jf: number; k: number };
  // Jumps are encoded against labels and resolved once the program's length is known.
  type Draft = { code: number; k: number; jt?: string; jf?: string };
  const draft: Draft[] = [];
  const labels = new Map<string, number>();
  const label = (name: string): void => void labels.set(name, draft.length);

  draft.push({ code: BPF_LD_W_ABS, k: OFFSET_ARCH });
  draft.push({ code: BPF_JEQ_K, k: params.auditArch, jf: 'kill' });
  draft.push({ code: BPF_LD_W_ABS, k: OFFSET_NR });
  if (params.x32) draft.push({ code: BPF_JGE_K, k: X32_SYSCALL_BIT, jt: 'kill' });
  for (const nr of denied) draft.push({ code: BPF_JEQ_K, k: nr, jt: 'eperm' });
  draft.push({ code: BPF_JEQ_K, k: params.clone3, jt: 'enosys' });
  draft.push({ code: BPF_JEQ_K, k: params.clone, jf: 'allow' });
  draft.push({ code: BPF_LD_W_ABS, k: OFFSET_ARG0_LOW });
  draft.push({ code: BPF_JSET_K, k: CLONE_NAMESPACE_FLAGS, jt: 'eperm', jf: 'allow' });
  label('allow');
  draft.push({ code: BPF_RET_K, k: SECCOMP_RET_ALLOW });
  label('eperm');
  draft.push({ code: BPF_RET_K, k: SECCOMP_RET_ERRNO | EPERM });
  label('enosys');
  draft.push({ code: BPF_RET_K, k: SECCOMP_RET_ERRNO | ENOSYS });
  label('kill');
  draft.push({ code: BPF_RET_K, k: SECCOMP_RET_KILL_PROCESS });

  const offset = (from: number, target: string | undefined): number => {
    if (target === undefined) return 0;
    const at = labels.get(target);
    if (at === undefined) throw new Error(`seccomp: unknown label ${target}`);
    const delta = at - from - 1;
    if (delta < 0 || delta > 255) throw new Error(`seccomp: jump to ${target} out of range`);
    return delta;
  };
  const program: Insn[] = draft.map((d, i) => ({ code: d.code, jt: offset(i, d.jt), jf: offset(i, d.jf), k: d.k }));
  const out = Buffer.alloc(program.length * 8);
  program.forEach((insn, i) => {
    out.writeUInt16LE(insn.code, i * 8);
    out.writeUInt8(insn.jt, i * 8 + 2);
    out.writeUInt8(insn.jf, i * 8 + 3);
    out.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  return out;
}

