// The `host` environment: builds run against this machine's own /usr, /etc and library directories, bound
// read-only. Nothing is installed or downloaded, which makes it fast and always available, and not hermetic.
import { lstat, realpath } from 'node:fs/promises';
import { BuilderError } from '../errors.ts';
import type { Mount } from '../runners/runner.ts';
import type { EnvironmentProvider, EnvironmentSpec, PreparedRoot } from './provider.ts';

export const HOST_ROOT_DESCRIPTION = "host (not hermetic: uses this machine's /usr, /etc)";

/** Top-level directories that make up a usable system, in mount order (/usr before what links into it). */
const HOST_DIRECTORIES = ['/usr', '/bin', '/sbin', '/lib', '/lib64', '/lib32', '/libx32', '/etc'];

const ARCH_ALIASES: Record<string, string> = { x64: 'x86_64', amd64: 'x86_64', arm64: 'aarch64' };

function canonicalArch(arch: string): string {
  return ARCH_ALIASES[arch] ?? arch;
}

/**
 * The mounts for the host's system directories. A merged-/usr link such as `/bin -> usr/bin` becomes a bind
 * of the directory it resolves to at the link's path, which keeps `/bin/sh` working without a symlink mount.
 */
export async function hostRootMounts(directories: readonly string[] = HOST_DIRECTORIES): Promise<Mount[]> {
  const mounts: Mount[] = [];
  for (const dir of directories) {
    let info;
    try {
      info = await lstat(dir);
    } catch {
      continue;
    }
    let source = dir;
    if (info.isSymbolicLink()) {
      try {
        source = await realpath(dir);
      } catch {
        continue; // dangling link: nothing to bind
      }
      if (!(await lstat(source)).isDirectory()) continue;
    } else if (!info.isDirectory()) {
      continue;
    }
    mounts.push({ source, target: dir, readonly: true });
  }
  return mounts;
}

export class HostProvider implements EnvironmentProvider {
  readonly name = 'host';

  async prepare(spec: EnvironmentSpec, log: (line: string) => void): Promise<PreparedRoot> {
    const hostArch = canonicalArch(process.arch);
    if (spec.arch !== '' && canonicalArch(spec.arch) !== hostArch) {
      throw new BuilderError(
        `the host environment can only build for this machine's architecture (${hostArch}), not ${spec.arch}`,
      );
    }
    const mounts = await hostRootMounts();
    if (!mounts.some((m) => m.target === '/usr')) {
      throw new BuilderError('the host environment needs a /usr directory on this machine');
    }
    if (spec.packages.length > 0) {
      log(
        `host environment: ${spec.packages.length} package(s) assumed present on the host, not installed: ` +
          spec.packages.join(' '),
      );
    }
    return {
      description: HOST_ROOT_DESCRIPTION,
      mounts,
      directory: undefined,
      release: async () => undefined,
    };
  }
}
