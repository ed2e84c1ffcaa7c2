// The guest kernel: where the image is, which release it is (read from the bzImage header, not guessed from
// the file name), where its modules are, and which module files the guest must load, in dependency order.
import { access, constants, mkdtemp, open, readdir, readFile, rm, stat, symlink, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { execa } from 'execa';
import { BuilderError, MissingToolError } from '../../errors.ts';

export interface KernelEnvironment {
  QEMU_KERNEL_IMAGE?: string;
  QEMU_KERNEL_MODULES?: string;
}

export interface KernelSpec {
  image: string;
  /** `uname -r` of the kernel, e.g. `6.1.0-28-cloud-amd64`. */
  release: string;
  /** The directory holding `kernel/`, `modules.dep`... for that release. */
  modulesDir: string;
}

/** How to get a kernel without installing one: said whenever none is found. */
export const KERNEL_HOWTO = [
  'get Debian\'s cloud kernel without installing it:',
  '  scripts/fetch-kernel.sh /var/tmp/builder-kernel',
  '  (apt-get download linux-image-6.1.0-NN-cloud-amd64 && dpkg-deb -x linux-image-*.deb /var/tmp/builder-kernel)',
  'then pass --kernel /var/tmp/builder-kernel/boot/vmlinuz-<version>',
  '  (or set QEMU_KERNEL_IMAGE; the modules are found beside it, or set QEMU_KERNEL_MODULES / --kernel-modules)',
];

export class KernelError extends BuilderError {
  override name = 'KernelError';
}

/** Compares dotted/dashed release strings numerically where they are numbers. */
function compareReleases(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = Number(x);
    const ny = Number(y);
    const c = Number.isInteger(nx) && Number.isInteger(ny) && x !== '' && y !== '' ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return 0;
}

/**
 * The kernel release from a bzImage's setup header: `kernel_version` (at 0x20e) points, relative to 0x200, at
 * a string like `6.1.0-28-cloud-amd64 (debian-kernel@…) #1 SMP …`.
 */
export async function kernelRelease(image: string, flag = '--kernel'): Promise<string> {
  let fh;
  try {
    fh = await open(image, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KernelError(`${flag}: cannot read kernel image ${image} (${code ?? (err as Error).message})`, { details: KERNEL_HOWTO });
  }
  try {
    const header = Buffer.alloc(0x280);
    const { bytesRead } = await fh.read(header, 0, header.length, 0);
    if (bytesRead < 0x212 || header.toString('latin1', 0x202, 0x206) !== 'HdrS') {
      throw new KernelError(`${flag}: ${image} is not a Linux kernel image (bzImage) — no "HdrS" setup header`);
    }
    const pointer = header.readUInt16LE(0x20e);
    if (pointer === 0) throw new KernelError(`${flag}: ${image} does not record its version`);
    const text = Buffer.alloc(256);
    await fh.read(text, 0, text.length, pointer + 0x200);
    const version = text.toString('latin1').split('\0')[0]!.split(' ')[0]!;
    if (!/^\d+\.\d+/.test(version)) throw new KernelError(`${flag}: ${image} has an unreadable version string`);
    return version;
  } finally {
    await fh.close();
  }
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

async function isDir(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

/** Where `scripts/fetch-kernel.sh` unpacks Debian's cloud kernel by default (and so setup and CI do). */
export const FETCHED_KERNEL_DIR = '/var/tmp/builder-kernel';

async function newestIn(bootDir: string): Promise<string | undefined> {
  const names = (await readdir(bootDir).catch(() => [] as string[])).filter((n) => n.startsWith('vmlinuz-'));
  names.sort((a, b) => compareReleases(a.slice(8), b.slice(8)));
  const newest = names.at(-1);
  return newest ? join(bootDir, newest) : undefined;
}

/** Where a kernel is looked for when none is named: the host's own, then the one scripts/fetch-kernel.sh unpacked. */
export const DEFAULT_BOOT_DIRS: readonly string[] = ['/boot', join(FETCHED_KERNEL_DIR, 'boot')];

async function defaultImage(bootDirs: readonly string[]): Promise<string | undefined> {
  for (const dir of bootDirs) {
    if (await isFile(join(dir, 'vmlinuz'))) return join(dir, 'vmlinuz');
    const newest = await newestIn(dir);
    if (newest) return newest;
  }
  return undefined;
}

/** The release a modules directory was built for, from its name or from a module's vermagic. */
async function modulesRelease(dir: string): Promise<string | undefined> {
  const name = basename(dir);
  if (/^\d+\.\d+/.test(name)) return name;
  const dep = await readFile(join(dir, 'modules.dep'), 'utf8').catch(() => undefined);
  const first = dep?.split('\n')[0]?.split(':')[0];
  if (!first) return undefined;
  const info = await execa('modinfo', ['-F', 'vermagic', join(dir, first)], { reject: false });
  return info.exitCode === 0 ? String(info.stdout).split(' ')[0] : undefined;
}

async function locateModules(requested: string | undefined, flag: string, image: string, release: string): Promise<string> {
  if (requested !== undefined) {
    const dir = resolve(requested);
    if (!(await isDir(dir))) throw new KernelError(`${flag}: ${dir} is not a directory`);
    for (const candidate of [join(dir, 'lib/modules', release), join(dir, release)]) {
      if (await isDir(candidate)) return candidate;
    }
    const looksLikeModules = (await isDir(join(dir, 'kernel'))) || (await isFile(join(dir, 'modules.dep')));
    if (!looksLikeModules) {
      throw new KernelError(`${flag}: ${dir} holds no kernel modules for ${release} (expected ${dir}/kernel/ or ${dir}/lib/modules/${release}/)`);
    }
    const built = await modulesRelease(dir);
    if (built !== undefined && built !== release) {
      throw new KernelError(`${flag}: ${dir} holds modules for kernel ${built}, but the kernel image ${image} is ${release}`);
    }
    return dir;
  }
  // The layout scripts/fetch-kernel.sh (and dpkg-deb -x) produces: PREFIX/boot/vmlinuz-R and PREFIX/lib/modules/R.
  const beside = join(dirname(dirname(image)), 'lib/modules', release);
  if (await isDir(beside)) return beside;
  const system = join('/lib/modules', release);
  if (await isDir(system)) return system;
  throw new KernelError(
    `no kernel modules for ${release} (looked in ${beside} and ${system}); pass --kernel-modules DIR or set QEMU_KERNEL_MODULES`,
    { details: KERNEL_HOWTO },
  );
}

/** Finds the kernel and its modules from the flags, then the environment, then /boot, then FETCHED_KERNEL_DIR. */
export async function locateKernel(options: {
  kernel?: string;
  kernelModules?: string;
  env?: KernelEnvironment;
  bootDirs?: readonly string[];
}): Promise<KernelSpec> {
  const env = options.env ?? (process.env as KernelEnvironment);
  let flag = '--kernel';
  let image = options.kernel;
  if (image === undefined && env.QEMU_KERNEL_IMAGE) {
    image = env.QEMU_KERNEL_IMAGE;
    flag = 'QEMU_KERNEL_IMAGE';
  }
  if (image === undefined) {
    image = await defaultImage(options.bootDirs ?? DEFAULT_BOOT_DIRS);
    flag = 'kernel';
    if (image === undefined) {
      throw new KernelError(`no kernel image: none given with --kernel or QEMU_KERNEL_IMAGE, none in ${(options.bootDirs ?? DEFAULT_BOOT_DIRS).join(' or ')}`, {
        details: KERNEL_HOWTO,
      });
    }
  }
  image = resolve(image);
  if (!(await isFile(image))) throw new KernelError(`${flag}: kernel image ${image} does not exist`, { details: KERNEL_HOWTO });
  try {
    await access(image, constants.R_OK);
  } catch {
    throw new KernelError(`${flag}: kernel image ${image} is not readable by this user`, { details: KERNEL_HOWTO });
  }
  const release = await kernelRelease(image, flag);
  const modulesFlag = options.kernelModules !== undefined ? '--kernel-modules' : 'QEMU_KERNEL_MODULES';
  const modulesDir = await locateModules(options.kernelModules ?? (env.QEMU_KERNEL_MODULES || undefined), modulesFlag, image, release);
  return { image, release, modulesDir };
}

/** A module the guest wants; optional ones are skipped when the kernel has no such module. */
export interface WantedModule {
  name: string;
  optional?: boolean;
}

function moduleName(path: string): string {
  return basename(path).replace(/\.ko(\.(xz|gz|zst))?$/, '').replaceAll('-', '_');
}

/** modules.dep as a map from module name to its path and its dependencies' paths. */
async function readModulesDep(kernel: KernelSpec, signal?: AbortSignal): Promise<Map<string, { path: string; deps: string[] }>> {
  let text = await readFile(join(kernel.modulesDir, 'modules.dep'), 'utf8').catch(() => undefined);
  if (text === undefined) text = await generateModulesDep(kernel, signal);
  const map = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) break;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter((d) => d !== '');
    map.set(moduleName(path), { path, deps });
  }
  return map;
}

/** An unpacked kernel package has no modules.dep: compute it with depmod without writing anything. */
async function generateModulesDep(kernel: KernelSpec, signal?: AbortSignal): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'builder-depmod-'));
  try {
    await mkdir(join(base, 'lib/modules'), { recursive: true });
    await symlink(kernel.modulesDir, join(base, 'lib/modules', kernel.release));
    const result = await execa('depmod', ['-b', base, '-n', kernel.release], { reject: false, cancelSignal: signal, env: { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` } });
    if (result.failed) {
      if ((result.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
        throw new MissingToolError(`${kernel.modulesDir} has no modules.dep and depmod is not installed (apt-get install kmod)`);
      }
      throw new KernelError(`depmod could not index ${kernel.modulesDir}: ${result.shortMessage}`);
    }
    return String(result.stdout);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

async function builtinModules(kernel: KernelSpec): Promise<Set<string>> {
  const text = await readFile(join(kernel.modulesDir, 'modules.builtin'), 'utf8').catch(() => '');
  return new Set(text.split('\n').filter((l) => l !== '').map(moduleName));
}

/**
 * The module files (paths relative to the modules dir) that load `wanted` and their dependencies, in load
 * order. Modules built into the kernel are left out; a required module the kernel lacks is an error.
 */
export async function moduleLoadOrder(kernel: KernelSpec, wanted: WantedModule[], signal?: AbortSignal): Promise<string[]> {
  const deps = await readModulesDep(kernel, signal);
  const builtin = await builtinModules(kernel);
  const order: string[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];
  for (const want of wanted) {
    const name = want.name.replaceAll('-', '_');
    const entry = deps.get(name);
    if (entry === undefined) {
      if (!builtin.has(name) && !want.optional) missing.push(want.name);
      continue;
    }
    // modules.dep lists a module's dependencies so that the last must be loaded first.
    for (const path of [...entry.deps].reverse().concat(entry.path)) {
      if (seen.has(path)) continue;
      seen.add(path);
      order.push(path);
    }
  }
  if (missing.length > 0) {
    throw new KernelError(`the kernel ${kernel.release} (${kernel.modulesDir}) has no module for ${missing.join(', ')}, which the VM needs`);
  }
  return order;
}
