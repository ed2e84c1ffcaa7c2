// Debian bases, made by mmdebstrap: real Debian tooling (apt resolves, dpkg unpacks and configures), so the
// root is what `debootstrap` plus `apt-get install` would give. A base keeps apt and its package lists, so a
// layer (more packages) is made from a copy of a cached base by apt inside it, not by a new mmdebstrap.
// Every .deb either downloads lands in one shared download cache, bind-mounted where apt keeps its archives.
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { BuilderError, MissingToolError } from '../errors.ts';
import { LineSplitter, Tail } from '../text/lines.ts';

export interface DebianBase {
  suite: string;
  packages: string[];
  mirror: string;
}

/** Where Debian tool output goes: progress to `log` (the terminal), tool chatter to `chatter` (the build log). */
export interface DebianLogs {
  log: (line: string) => void;
  chatter: (line: string) => void;
}

/**
 * Variant `essential` (only Essential:yes packages: a shell, coreutils, dpkg, libc) keeps the root small;
 * apt is added so layers can install more packages inside a copy of the base.
 */
export const DEBIAN_VARIANT = 'essential';
const LAYER_TOOLS = ['apt'];

const DEBIAN_ARCH: Record<string, string> = {
  x86_64: 'amd64',
  aarch64: 'arm64',
  armv7: 'armhf',
  x86: 'i386',
  ppc64le: 'ppc64el',
  s390x: 's390x',
  riscv64: 'riscv64',
};

export function debianArch(arch: string): string {
  const mapped = DEBIAN_ARCH[arch];
  if (!mapped) throw new BuilderError(`no Debian architecture for ${arch} (known: ${Object.keys(DEBIAN_ARCH).join(', ')})`);
  return mapped;
}

/**
 * The mmdebstrap command line (exposed so tests and logs can show exactly what runs). The download cache is
 * bind-mounted over the root's apt archives while mmdebstrap runs ($BUILDER_DEB_CACHE, set in the
 * environment, so no path is spliced into the hook's shell text); the essential .debs are kept there
 * (`essential/unlink` skipped) and apt's lists stay in the root for later layers.
 */
export function mmdebstrapArgs(base: DebianBase, arch: string, target: string): string[] {
  const include = [...new Set([...LAYER_TOOLS, ...base.packages])].sort();
  return [
    `--variant=${DEBIAN_VARIANT}`,
    `--architectures=${debianArch(arch)}`,
    `--include=${include.join(',')}`,
    '--aptopt=Acquire::Retries "3"',
    '--skip=essential/unlink',
    '--skip=cleanup/apt/lists',
    '--setup-hook=mkdir -p "$1/var/cache/apt/archives" && mount --bind "$BUILDER_DEB_CACHE" "$1/var/cache/apt/archives"',
    '--customize-hook=umount "$1/var/cache/apt/archives"',
    base.suite,
    target,
    base.mirror,
  ];
}

/** The .deb files in the download cache (name → size). */
export async function debsIn(cache: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const name of await readdir(cache).catch(() => [] as string[])) {
    if (!name.endsWith('.deb')) continue;
    const st = await stat(join(cache, name)).catch(() => undefined);
    if (st?.isFile()) out.set(name, st.size);
  }
  return out;
}

/** How many .debs a run added to the cache, and their size: the progress line the terminal shows. */
async function reportDownloads(cache: string, before: Map<string, number>, logs: DebianLogs): Promise<number> {
  const after = await debsIn(cache);
  let count = 0;
  let bytes = 0;
  for (const [name, size] of after) {
    if (before.has(name)) continue;
    count++;
    bytes += size;
  }
  logs.log(`environment: downloaded ${count} .deb(s), ${(bytes / 1e6).toFixed(1)} MB (${after.size - count} reused from ${cache})`);
  return count;
}

/** Streams a child's output to the chatter log and keeps its tail for the error. */
async function runTool(child: ResultPromise, logs: DebianLogs, tail: Tail): Promise<{ exitCode: number | undefined; failed: boolean }> {
  const lines = new LineSplitter((line) => {
    tail.add(line);
    logs.chatter(line);
  });
  child.all?.on('data', (chunk: Buffer) => lines.push(chunk));
  const result = await child;
  lines.flush();
  return { exitCode: result.exitCode, failed: result.failed };
}

/** A failure that looks like the network: say which mirror could not be reached. */
function mirrorProblem(tail: string[], mirror: string): string | undefined {
  const hit = tail.find((l) => /Could not resolve|Failed to fetch|Temporary failure resolving|Connection failed|Unable to connect|Could not connect|No route to host/i.test(l));
  return hit ? `the Debian mirror ${mirror} is unreachable (${hit.trim()})` : undefined;
}

/** Makes a Debian root in the empty directory `target`. Returns the number of .debs downloaded. */
export async function createDebianRoot(
  base: DebianBase,
  arch: string,
  target: string,
  debCache: string,
  logs: DebianLogs,
  signal?: AbortSignal,
): Promise<number> {
  const probe = await execa('mmdebstrap', ['--version'], { reject: false });
  if (probe.failed) {
    throw new MissingToolError('a debian: base needs mmdebstrap (apt-get install mmdebstrap)');
  }
  await mkdir(join(debCache, 'partial'), { recursive: true });
  const what = `debian:${base.suite}${base.packages.length ? `:${base.packages.join(',')}` : ''}`;
  logs.log(`environment: mmdebstrap ${what} from ${base.mirror} (output in the build log)`);
  const before = await debsIn(debCache);
  const tail = new Tail(30);
  // As root, mmdebstrap's mounts (and our bind of the download cache) happen in the host's mount namespace: a
  // private one dies with mmdebstrap, so a failed run cannot leave the cache mounted inside a temp root that
  // is then deleted. (Unprivileged mmdebstrap already runs in its own namespaces.)
  const [command, ...prefix] = process.getuid?.() === 0 ? ['unshare', '--mount', '--propagation', 'private', 'mmdebstrap'] : ['mmdebstrap'];
  const result = await runTool(
    execa(command!, [...prefix, ...mmdebstrapArgs(base, arch, target)], {
      reject: false,
      all: true,
      buffer: false,
      stdin: 'ignore',
      cancelSignal: signal,
      env: { LC_ALL: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive', BUILDER_DEB_CACHE: debCache },
    }),
    logs,
    tail,
  );
  if (result.exitCode !== 0 || result.failed) {
    throw new BuilderError(mirrorProblem(tail.lines, base.mirror) ?? `mmdebstrap could not make ${what} from ${base.mirror} (exit ${result.exitCode ?? 'signal'})`, {
      details: tail.lines,
    });
  }
  return reportDownloads(debCache, before, logs);
}

/**
 * Installs `packages` with apt inside `rootfs` (a private copy of a cached base), in a bubblewrap sandbox as
 * root, with the download cache bound at /var/cache/apt/archives. Returns the number of .debs downloaded.
 */
export async function installDebianPackages(
  rootfs: string,
  packages: readonly string[],
  mirror: string,
  debCache: string,
  logs: DebianLogs,
  signal?: AbortSignal,
): Promise<number> {
  await mkdir(join(debCache, 'partial'), { recursive: true });
  await mkdir(join(rootfs, 'var/cache/apt/archives'), { recursive: true });
  // Debian's way to keep maintainer scripts from starting services while packages are installed.
  const policy = join(rootfs, 'usr/sbin/policy-rc.d');
  await writeFile(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  const before = await debsIn(debCache);
  const tail = new Tail(30);
  const args = [
    '--bind', rootfs, '/',
    '--dev', '/dev',
    '--proc', '/proc',
    '--tmpfs', '/tmp',
    '--bind', debCache, '/var/cache/apt/archives',
    '--ro-bind-try', '/etc/resolv.conf', '/etc/resolv.conf',
    '--unshare-pid', '--unshare-ipc', '--unshare-uts',
    '--die-with-parent',
    '--cap-add', 'ALL',
    '--clearenv',
    '--setenv', 'PATH', '/usr/sbin:/usr/bin:/sbin:/bin',
    '--setenv', 'LC_ALL', 'C.UTF-8',
    '--setenv', 'DEBIAN_FRONTEND', 'noninteractive',
    '--',
    'apt-get', 'install', '-y', '--no-install-recommends', '-o', 'APT::Keep-Downloaded-Packages=true', '-o', 'Dpkg::Use-Pty=0',
    // No fsync per file (as mmdebstrap does while it installs): the layer is published only when complete.
    '-o', 'Dpkg::Options::=--force-unsafe-io',
    ...packages,
  ];
  // bwrap's init in the new pid namespace ignores SIGTERM, so an interrupt kills the whole process group
  // (bwrap, its init, apt, dpkg, maintainer scripts): nothing keeps writing into a temp root being removed.
  const child = execa('bwrap', args, { reject: false, all: true, buffer: false, stdin: 'ignore', detached: true });
  const kill = (): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  signal?.addEventListener('abort', kill, { once: true });
  if (signal?.aborted) kill();
  let result: { exitCode: number | undefined; failed: boolean };
  try {
    result = await runTool(child, logs, tail);
  } finally {
    signal?.removeEventListener('abort', kill);
  }
  if (signal?.aborted) throw new BuilderError(`interrupted while apt-get installed ${packages.join(' ')}`);
  if (result.exitCode !== 0 || result.failed) {
    throw new BuilderError(mirrorProblem(tail.lines, mirror) ?? `apt-get could not install ${packages.join(' ')} (exit ${result.exitCode ?? 'signal'})`, {
      details: tail.lines,
    });
  }
  await rm(policy, { force: true });
  return reportDownloads(debCache, before, logs);
}
