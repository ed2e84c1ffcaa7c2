// Debian bases, made by mmdebstrap: real Debian tooling (apt resolves, dpkg unpacks and configures), so the
// root is what `debootstrap` plus `apt-get install` would give, without needing apt inside the root.
import { execa } from 'execa';
import { BuilderError, MissingToolError } from '../errors.ts';
import { LineSplitter, Tail } from '../text/lines.ts';

export interface DebianBase {
  suite: string;
  packages: string[];
  mirror: string;
}

/**
 * Variant `essential` (only Essential:yes packages: a shell, coreutils, dpkg, libc) keeps the root small;
 * the requested packages are installed by apt from outside the root.
 */
export const DEBIAN_VARIANT = 'essential';

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

/** The mmdebstrap command line (exposed so tests and logs can show exactly what runs). */
export function mmdebstrapArgs(base: DebianBase, arch: string, target: string): string[] {
  return [
    `--variant=${DEBIAN_VARIANT}`,
    `--architectures=${debianArch(arch)}`,
    ...(base.packages.length > 0 ? [`--include=${base.packages.join(',')}`] : []),
    '--aptopt=Acquire::Retries "3"',
    base.suite,
    target,
    base.mirror,
  ];
}

/** Makes a Debian root in the empty directory `target`. */
export async function createDebianRoot(
  base: DebianBase,
  arch: string,
  target: string,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  const probe = await execa('mmdebstrap', ['--version'], { reject: false });
  if (probe.failed) {
    throw new MissingToolError('a debian: base needs mmdebstrap (apt-get install mmdebstrap)');
  }
  const what = `debian:${base.suite}${base.packages.length ? `:${base.packages.join(',')}` : ''}`;
  log(`environment: mmdebstrap ${what} from ${base.mirror}`);
  const tail = new Tail(30);
  const child = execa('mmdebstrap', mmdebstrapArgs(base, arch, target), {
    reject: false,
    all: true,
    buffer: false,
    stdin: 'ignore',
    cancelSignal: signal,
    env: { LC_ALL: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive' },
  });
  const lines = new LineSplitter((line) => {
    tail.add(line);
    if (/^(I|W|E): /.test(line)) log(line);
  });
  child.all?.on('data', (chunk: Buffer) => lines.push(chunk));
  const result = await child;
  lines.flush();
  if (result.exitCode !== 0 || result.failed) {
    throw new BuilderError(`mmdebstrap could not make ${what} from ${base.mirror} (exit ${result.exitCode ?? 'signal'})`, {
      details: tail.lines,
    });
  }
}
