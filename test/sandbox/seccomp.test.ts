// The seccomp program is checked here by executing it with a small classic-BPF interpreter, for both syscall
// tables (only the host's can be checked against the kernel, in bubblewrap.test.ts).
import { describe, expect, it } from 'vitest';
import { buildSeccompFilter, hostSeccompArch, type SeccompArch } from '../../src/sandbox/seccomp.ts';

const ALLOW = 0x7fff0000;
const EPERM = 0x00050000 | 1;
const ENOSYS = 0x00050000 | 38;
const KILL_PROCESS = 0x80000000;
const AUDIT_ARCH = { x86_64: 0xc000003e, aarch64: 0xc00000b7, i386: 0x40000003 };

/** Runs the filter against one seccomp_data {nr, arch, args[0]} and returns the action. */
function evaluate(program: Buffer, nr: number, arch: number, arg0 = 0): number {
  const data = Buffer.alloc(64);
  data.writeInt32LE(nr, 0);
  data.writeUInt32LE(arch, 4);
  data.writeBigUInt64LE(BigInt(arg0), 16);
  expect(program.length % 8).toBe(0);
  let acc = 0;
  let pc = 0;
  for (let steps = 0; steps < 10_000; steps++) {
    const at = pc * 8;
    if (at >= program.length) throw new Error('fell off the end of the program');
    const code = program.readUInt16LE(at);
    const jt = program.readUInt8(at + 2);
    const jf = program.readUInt8(at + 3);
    const k = program.readUInt32LE(at + 4);
    pc++;
    switch (code) {
      case 0x20: // ld [k]
        acc = data.readUInt32LE(k);
        break;
      case 0x15: // jeq #k
        pc += acc === k ? jt : jf;
        break;
      case 0x35: // jge #k
        pc += acc >= k ? jt : jf;
        break;
      case 0x45: // jset #k
        pc += (acc & k) !== 0 ? jt : jf;
        break;
      case 0x06: // ret #k
        return k;
      default:
        throw new Error(`unexpected opcode ${code.toString(16)}`);
    }
  }
  throw new Error('program did not terminate');
}

const TABLES: Record<SeccompArch, { ordinary: Record<string, number>; denied: Record<string, number>; clone: number }> = {
  x86_64: {
    ordinary: { read: 0, write: 1, openat: 257, execve: 59, fork: 57, wait4: 61, exit_group: 231 },
    denied: { mount: 165, umount2: 166, unshare: 272, setns: 308, ptrace: 101, bpf: 321, keyctl: 250, reboot: 169 },
    clone: 56,
  },
  aarch64: {
    ordinary: { read: 63, write: 64, openat: 56, execve: 221, wait4: 260, exit_group: 94 },
    denied: { mount: 40, umount2: 39, unshare: 97, setns: 268, ptrace: 117, bpf: 280, keyctl: 219, reboot: 142 },
    clone: 220,
  },
};

describe.each(['x86_64', 'aarch64'] as const)('seccomp filter for %s', (arch) => {
  const program = buildSeccompFilter(arch);
  const table = TABLES[arch];

  it('allows ordinary syscalls', () => {
    for (const nr of Object.values(table.ordinary)) expect(evaluate(program, nr, AUDIT_ARCH[arch])).toBe(ALLOW);
  });

  it('returns EPERM for the denied syscalls', () => {
    for (const [name, nr] of Object.entries(table.denied)) {
      expect([name, evaluate(program, nr, AUDIT_ARCH[arch])]).toEqual([name, EPERM]);
    }
  });

  it('denies clone() only when it asks for new namespaces, and sends clone3 back to clone', () => {
    const SIGCHLD = 17;
    expect(evaluate(program, table.clone, AUDIT_ARCH[arch], SIGCHLD)).toBe(ALLOW);
    expect(evaluate(program, table.clone, AUDIT_ARCH[arch], 0x003d0f00 | SIGCHLD)).toBe(ALLOW); // a thread
    for (const flag of [0x10000000, 0x20000000, 0x40000000, 0x00020000, 0x08000000, 0x04000000, 0x02000000]) {
      expect(evaluate(program, table.clone, AUDIT_ARCH[arch], flag | SIGCHLD)).toBe(EPERM);
    }
    expect(evaluate(program, 435, AUDIT_ARCH[arch])).toBe(ENOSYS);
  });

  it('kills syscalls made through another architecture\'s table', () => {
    const other = arch === 'x86_64' ? AUDIT_ARCH.aarch64 : AUDIT_ARCH.x86_64;
    expect(evaluate(program, 0, other)).toBe(KILL_PROCESS);
    expect(evaluate(program, 0, AUDIT_ARCH.i386)).toBe(KILL_PROCESS);
  });
});

describe('seccomp filter details', () => {
  it('kills x32 syscalls on x86_64, which would otherwise dodge the table', () => {
    const program = buildSeccompFilter('x86_64');
    expect(evaluate(program, 0x40000000 + 165, AUDIT_ARCH.x86_64)).toBe(KILL_PROCESS);
    expect(evaluate(program, 0x40000000, AUDIT_ARCH.x86_64)).toBe(KILL_PROCESS);
  });

  it('maps Node architectures to syscall tables', () => {
    expect(hostSeccompArch('x64')).toBe('x86_64');
    expect(hostSeccompArch('arm64')).toBe('aarch64');
    expect(hostSeccompArch('riscv64')).toBeUndefined();
  });
});
