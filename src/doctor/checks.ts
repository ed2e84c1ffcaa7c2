// What `builder doctor` checks: each host prerequisite of a build, with the exact fix when it is missing.
// Checks never throw: a failure is a result. Paths under /proc/sys and the tool search path can be pointed
// elsewhere so the diagnosis of each setting is testable on any host.
import { readFile, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { execa } from 'execa';
import { errorMessage } from '../errors.ts';
import { BubblewrapRunner } from '../runners/bubblewrap.ts';
import { chooseAccelerator, kvmDeviceProblem } from '../runners/qemu/accel.ts';
import { KERNEL_HOWTO, locateKernel } from '../runners/qemu/kernel.ts';
import { findQemuTools, QEMU_PACKAGE } from '../runners/qemu/process.ts';
import { findExecutable } from '../runners/which.ts';
import { formatSize } from '../text/transfer-progress.ts';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  /** Stable identifier (`node`, `bwrap`, `userns`, `qemu`, `kvm`, `kernel`, `mmdebstrap`, `space:<name>`, `mirror:<url>`). */
  id: string;
  status: CheckStatus;
  detail: string;
  /** What to run or change, when the status is not ok. */
  fix?: string;
}

/** Node ≥ 22.6 runs TypeScript by type stripping, which builder relies on. */
export function checkNode(version = process.versions.node): CheckResult {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const ok = major > 22 || (major === 22 && minor >= 6);
  return ok
    ? { id: 'node', status: 'ok', detail: `Node.js ${version}` }
    : { id: 'node', status: 'fail', detail: `Node.js ${version} is older than 22.6 (no type stripping)`, fix: 'install Node.js 22 or newer (e.g. NodeSource: curl -fsSL https://deb.nodesource.com/setup_22.x | bash - && apt-get install nodejs)' };
}

async function readSysctl(procSys: string, key: string): Promise<string | undefined> {
  return (await readFile(`${procSys}/${key.replaceAll('.', '/')}`, 'utf8').catch(() => undefined))?.trim();
}

/**
 * The kernel settings that forbid unprivileged user namespaces: Debian's old `unprivileged_userns_clone`,
 * `user.max_user_namespaces`, and Ubuntu 23.10+'s AppArmor restriction (melange #1508). Root is not bound by
 * the first and last.
 */
export async function checkUserNamespaces(options: { procSys?: string; uid?: number } = {}): Promise<CheckResult> {
  const procSys = options.procSys ?? '/proc/sys';
  const uid = options.uid ?? process.getuid?.() ?? 0;
  const max = await readSysctl(procSys, 'user.max_user_namespaces');
  if (max === '0') {
    return { id: 'userns', status: 'fail', detail: 'user namespaces are disabled (user.max_user_namespaces = 0)', fix: 'sysctl -w user.max_user_namespaces=15000 (persist it in /etc/sysctl.d/)' };
  }
  const problems: { detail: string; fix: string }[] = [];
  if ((await readSysctl(procSys, 'kernel.unprivileged_userns_clone')) === '0') {
    problems.push({ detail: 'kernel.unprivileged_userns_clone = 0', fix: 'sysctl -w kernel.unprivileged_userns_clone=1' });
  }
  if ((await readSysctl(procSys, 'kernel.apparmor_restrict_unprivileged_userns')) === '1') {
    problems.push({
      detail: "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1, Ubuntu's default)",
      fix: 'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (persist it in /etc/sysctl.d/), or give bwrap an AppArmor profile that allows userns',
    });
  }
  if (problems.length === 0) return { id: 'userns', status: 'ok', detail: `unprivileged user namespaces allowed${max ? ` (max ${max})` : ''}` };
  const detail = problems.map((p) => p.detail).join('; ');
  if (uid === 0) return { id: 'userns', status: 'ok', detail: `running as root, so not affected by: ${detail}` };
  return { id: 'userns', status: 'fail', detail, fix: problems.map((p) => p.fix).join('; ') };
}

/** bwrap creates a sandbox here (the same probe the runner makes before its first step). */
export async function checkBwrap(bwrapPath = 'bwrap'): Promise<CheckResult> {
  const usability = await new BubblewrapRunner({ bwrapPath }).testUsability();
  if (usability.usable) return { id: 'bwrap', status: 'ok', detail: `${(await findExecutable(bwrapPath)) ?? bwrapPath} creates sandboxes` };
  const missing = /not installed|not found/.test(usability.reason);
  return {
    id: 'bwrap',
    status: 'fail',
    detail: usability.reason,
    fix: missing ? 'apt-get install --no-install-recommends bubblewrap' : 'allow unprivileged user namespaces (see the userns check), or use --runner qemu',
  };
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  const r = await execa(cmd, args, { reject: false, timeout: 10_000 });
  return (String(r.stdout).split('\n')[0] ?? '').trim();
}

export async function checkQemu(searchPath?: string): Promise<CheckResult> {
  try {
    const tools = await findQemuTools(undefined, searchPath);
    return { id: 'qemu', status: 'ok', detail: `${tools.qemu}: ${await firstLine(tools.qemu, ['--version'])}` };
  } catch (err) {
    return { id: 'qemu', status: 'fail', detail: errorMessage(err), fix: `apt-get install --no-install-recommends ${QEMU_PACKAGE} (only for --runner qemu)` };
  }
}

export async function checkKernel(): Promise<CheckResult & { image?: string }> {
  try {
    const k = await locateKernel({});
    return { id: 'kernel', status: 'ok', detail: `${k.image} (${k.release}), modules in ${k.modulesDir}`, image: k.image };
  } catch (err) {
    return { id: 'kernel', status: 'fail', detail: errorMessage(err), fix: KERNEL_HOWTO.join(' ').replace(/\s+/g, ' ') };
  }
}

/** KVM through the runner's own probe (a guest must print its first console line), cached for this boot. */
export async function checkKvm(kernel: string | undefined, artifactDir: string, signal?: AbortSignal): Promise<CheckResult> {
  const device = await kvmDeviceProblem();
  const slow = 'VMs run under TCG, several times slower; the qemu runner still works';
  if (device !== null) return { id: 'kvm', status: 'warn', detail: `${device}: ${slow}`, fix: 'enable virtualisation (or nested virtualisation) for this host, then modprobe kvm_intel or kvm_amd' };
  if (kernel === undefined) return { id: 'kvm', status: 'warn', detail: '/dev/kvm is accessible, but not probed without a guest kernel', fix: 'get a guest kernel (see the kernel check)' };
  try {
    const tools = await findQemuTools();
    const lines: string[] = [];
    const accel = await chooseAccelerator({ requested: 'auto', tools, kernel, machine: 'q35', artifactDir, log: (l) => lines.push(l), ...(signal ? { signal } : {}) });
    const said = lines.join('; ').replace(/^accelerator: /, '');
    return accel === 'kvm'
      ? { id: 'kvm', status: 'ok', detail: said }
      : { id: 'kvm', status: 'warn', detail: `${said}: ${slow}`, fix: 'use --accel tcg to skip the probe; fix the host\'s KVM (nested virtualisation) for speed' };
  } catch (err) {
    return { id: 'kvm', status: 'warn', detail: `not probed: ${errorMessage(err)}` };
  }
}

export async function checkMmdebstrap(searchPath?: string): Promise<CheckResult> {
  const found = await findExecutable('mmdebstrap', searchPath);
  if (found === null) return { id: 'mmdebstrap', status: 'fail', detail: 'mmdebstrap is not installed (needed for debian: bases)', fix: 'apt-get install --no-install-recommends mmdebstrap' };
  return { id: 'mmdebstrap', status: 'ok', detail: `${found}: ${await firstLine(found, ['--version'])}` };
}

/** Free space warned about below, and failed below. */
export const SPACE_WARN_BYTES = 5 * 1024 ** 3;
export const SPACE_FAIL_BYTES = 1024 ** 3;

/** Free space where a cache lives (its nearest existing parent when it does not exist yet). */
export async function checkSpace(name: string, dir: string, limits = { warn: SPACE_WARN_BYTES, fail: SPACE_FAIL_BYTES }): Promise<CheckResult> {
  let at = dir;
  for (;;) {
    const st = await statfs(at).catch(() => undefined);
    if (st) {
      const free = st.bavail * st.bsize;
      const detail = `${formatSize(free)} free at ${dir}${at === dir ? '' : ` (on ${at}'s filesystem)`}`;
      if (free >= limits.warn) return { id: `space:${name}`, status: 'ok', detail };
      const fix = name === 'root-cache' ? 'builder cache prune --older-than 30d, or --root-cache-dir on a larger disk' : `free space there, or point the cache elsewhere (--${name}-dir)`;
      return { id: `space:${name}`, status: free < limits.fail ? 'fail' : 'warn', detail, fix };
    }
    const up = dirname(at);
    if (up === at) return { id: `space:${name}`, status: 'warn', detail: `cannot stat ${dir} or any parent` };
    at = up;
  }
}

/** Whether an HTTP(S) mirror answers at all (any status below 500) within the deadline. */
export async function checkMirror(url: string, timeoutMs = 10_000): Promise<CheckResult> {
  const id = `mirror:${url}`;
  if (url.startsWith('file://')) return { id, status: 'ok', detail: 'local mirror' };
  const started = performance.now();
  try {
    const response = await fetch(url.endsWith('/') ? url : `${url}/`, { method: 'HEAD', redirect: 'follow', signal: AbortSignal.timeout(timeoutMs) });
    const ms = Math.round(performance.now() - started);
    if (response.status < 500) return { id, status: 'ok', detail: `HTTP ${response.status} in ${ms} ms` };
    return { id, status: 'fail', detail: `HTTP ${response.status} (server error)`, fix: 'try again later or choose another mirror (debian:SUITE@MIRROR)' };
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return { id, status: 'fail', detail: `unreachable: ${errorMessage(err)}${cause}`, fix: 'check the network and DNS, or choose another mirror' };
  }
}
