// Options shared by every command that runs steps in a sandbox (`build`, `test`): the runner, the build
// root and the workspace. One definition, so the commands cannot drift apart.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import type { EnvironmentAdditions } from '../seams.ts';
import type { EnvironmentProvider } from '../environment/provider.ts';
import { archInfo, hostArch } from '../pipeline/arch.ts';
import { defaultArtifactDir } from '../runners/qemu/seal.ts';
import type { Runner } from '../runners/runner.ts';
import { parseCpu, parseMemory } from '../runners/qemu/machine.ts';
import type { RunLimits } from '../build/run-plan.ts';
import { existsSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import { BuilderError, UsageError } from '../errors.ts';
import { readEnvFiles } from './env-file.ts';
import { readVarsFile } from './vars-file.ts';
import { collectList, parseDuration } from './options.ts';

export interface SandboxFlags {
  runner: string;
  arch: string[];
  pipelineDir: string[];
  pipelineDirs: string[];
  buildOption: string[];
  varsFile?: string;
  envFile: string[];
  cacheSource?: string;
  interactive: boolean;
  debugRunner: boolean;
  rm?: boolean;
  cleanup?: boolean;
  timeout?: string;
  cpumodel?: string;
  disk?: string;
  logLevel: string;
  namespace: string;
  base?: string;
  repositoryAppend: string[];
  keyringAppend: string[];
  packageAppend: string[];
  ignoreSignatures: boolean;
  packageMap?: string;
  apkCacheDir?: string;
  rootCacheDir?: string;
  sourceDir?: string;
  cacheDir: string;
  workspaceDir?: string;
  buildDate?: string;
  debug: boolean;
  keepWorkspace: boolean;
  kernel?: string;
  kernelModules?: string;
  initramfs?: string;
  accel: 'auto' | 'kvm' | 'tcg';
  machine: 'q35' | 'microvm';
  cpu?: string;
  memory?: string;
  vmBootTimeout: string;
  vmArtifactDir: string;
}

export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'builder');
}

/** Options every command that reads a recipe shares with melange's `build`, `test` and `compile`. */
export function addRecipeOptions(cmd: Command): Command {
  return cmd
    .option('--arch <archs>', "architectures to build for, comma-separated or repeated, each built in turn (default: this machine's)", collectList, [])
    .option('--pipeline-dirs <dirs>', 'directories of pipeline definitions searched before the built-ins (comma-separated, repeatable)', collectList, [])
    .option('--pipeline-dir <dir>', 'one such directory (repeatable; same as --pipeline-dirs)', collectList, [])
    .option('--build-option <names>', "enable the recipe's `options` (comma-separated, repeatable)", collectList, [])
    .option('--vars-file <file>', "YAML mapping of variables merged over the recipe's vars (the file wins; enabled options win over it)")
    .option('--namespace <name>', 'distribution namespace for SBOM package URLs (pkg:apk/<namespace>/...)', 'unknown')
    .addOption(new Option('--log-level <level>', 'how much builder says: debug and info print progress, warn and error only problems').choices(['debug', 'info', 'warn', 'error']).default('info'));
}

export function addSandboxOptions(cmd: Command): Command {
  return addRecipeOptions(cmd)
    .addOption(new Option('--runner <name>', 'sandbox to run steps in').choices(['bubblewrap', 'qemu', 'auto']).default('auto'))
    .option('--base <ref>', 'base of the root: debian:SUITE[:PKG,...][@MIRROR], dir:PATH, oci:PATH, oci:REGISTRY/REPO:TAG or host')
    .option('-r, --repository-append <repos>', "APK repositories (directories or URLs) added to the recipe's (comma-separated, repeatable)", collectList, [])
    .option('-k, --keyring-append <keys>', 'public keys trusted for repositories (comma-separated, repeatable)', collectList, [])
    .option('--package-append <pkgs>', 'packages added to the environment (comma-separated, repeatable)', collectList, [])
    .option('--env-file <file>', 'dotenv file of variables preloaded into the steps\' environment; the recipe\'s environment wins (repeatable)', collectList, [])
    .option('--package-map <file>', 'YAML map of package names to Debian packages (name: [deb, ...]; name: [] drops), over the built-in map')
    .option('--ignore-signatures', 'accept unsigned or untrusted repository indexes and packages', false)
    .option('--apk-cache-dir <dir>', 'cache for downloaded packages and indexes (default: <root cache>/downloads)')
    .option('--root-cache-dir <dir>', 'cache of build roots (default: $XDG_CACHE_HOME/builder-roots, else ~/.cache/builder-roots)')
    .option('--source-dir <dir>', "directory copied into the workspace (default: <recipe dir>/<package name>/ when it exists, else the recipe's folder; .git is never copied)")
    .option('--cache-dir <dir>', 'cache mounted at /var/cache/melange', defaultCacheDir())
    .option('--cache-source <dir>', 'directory whose files preload --cache-dir (existing entries are kept)')
    .option('--workspace-dir <dir>', 'where the temp workspace is created (default: the system temp dir)')
    .option('--build-date <date>', "timestamp for every file, seconds or ISO 8601 (SOURCE_DATE_EPOCH wins; default: the recipe's git commit time, else 0)")
    .option('--debug', 'trace every shell command (set -x)', false)
    .option('-i, --interactive', 'when a step fails, a shell in its sandbox on this terminal (bubblewrap runner); exiting it ends the run as failed', false)
    .option('--rm', 'remove the workspace after success (default)')
    .option('--no-rm', 'keep the workspace after success')
    .option('--cleanup', 'same as --rm (default)')
    .option('--no-cleanup', 'same as --no-rm')
    .option('--keep-workspace', 'keep the workspace after success (always kept on failure); same as --rm=false', false)
    .option('--debug-runner', 'keep the workspace after the run, whatever its outcome', false)
    .option('--timeout <duration>', 'bound for the whole run, e.g. 90s, 1h30m; wins over package.timeout (0: the recipe\'s)')
    .option('--cpu <n>', 'qemu runner: vCPUs; wins over package.resources.cpu (default: that, capped to the host, else all)')
    .option('--cpumodel <model>', 'qemu runner: CPU model given to qemu -cpu (default: host with KVM, max with TCG)')
    .option('--memory <size>', 'qemu runner: memory, e.g. 2G; wins over package.resources.memory (default: that, capped to the host)')
    .option('--disk <size>', 'qemu runner: disk, e.g. 10G; wins over package.resources.disk (builder adds it as free space over the root\'s contents)')
    .option('--kernel <file>', 'qemu runner: guest kernel image (else QEMU_KERNEL_IMAGE, else the newest /boot/vmlinuz-*)')
    .option('--kernel-modules <dir>', 'qemu runner: modules for that kernel (else QEMU_KERNEL_MODULES, else /lib/modules/<release>)')
    .option('--initramfs <file>', 'qemu runner: base initramfs (else QEMU_BASE_INITRAMFS, else built and cached on first use)')
    .addOption(new Option('--accel <accel>', 'qemu runner: accelerator; auto probes KVM and falls back to TCG').choices(['auto', 'kvm', 'tcg']).default('auto'))
    .addOption(new Option('--machine <type>', 'qemu runner: machine type').choices(['q35', 'microvm']).default('q35'))
    .option('--vm-boot-timeout <seconds>', 'qemu runner: how long a boot may take before it is retried once', '60')
    .option('--vm-artifact-dir <dir>', 'qemu runner: sealed store of kernels, initramfs, disk images (never under --cache-dir)', defaultArtifactDir());
}

/** What the melange-style flags resolve to, before any arch is run. */
export interface RunFlags {
  archs: string[];
  pipelineDirs: string[];
  keepWorkspace: boolean;
  /** Variables from --env-file, under the recipe's environment. */
  env: Record<string, string>;
  /** Variables from --vars-file, over the recipe's vars. */
  vars: Record<string, string>;
  /** --timeout (seconds, when given and not 0), --cpu, --memory, --disk: over the recipe's. */
  limits: RunLimits;
  /** Progress lines are shown (--log-level debug/info). */
  verbose: boolean;
}

export async function resolveRunFlags(flags: SandboxFlags, note: (line: string) => void): Promise<RunFlags> {
  const limits = runLimits(flags);
  if (flags.cacheSource) await preloadCache(flags.cacheSource, flags.cacheDir);
  const removeAfter = flags.rm !== false && flags.cleanup !== false && !flags.keepWorkspace && !flags.debugRunner;
  return {
    archs: recipeArchs(flags),
    pipelineDirs: [...flags.pipelineDirs, ...flags.pipelineDir],
    keepWorkspace: !removeAfter,
    env: await readEnvFiles(flags.envFile),
    vars: flags.varsFile === undefined ? {} : await readVarsFile(flags.varsFile),
    limits,
    verbose: flags.logLevel === 'debug' || flags.logLevel === 'info',
  };
}

/** --timeout, --cpu, --memory, --disk, checked here so a bad value names its flag. */
export function runLimits(flags: Pick<SandboxFlags, 'timeout' | 'cpu' | 'memory' | 'disk'>): RunLimits {
  const timeout = flags.timeout === undefined ? 0 : parseDuration('--timeout', flags.timeout);
  if (flags.cpu !== undefined) parseCpu(flags.cpu, '--cpu');
  if (flags.memory !== undefined) parseMemory(flags.memory, '--memory');
  if (flags.disk !== undefined) parseMemory(flags.disk, '--disk');
  return {
    ...(timeout ? { timeout } : {}),
    ...(flags.cpu !== undefined ? { cpu: flags.cpu } : {}),
    ...(flags.memory !== undefined ? { memory: flags.memory } : {}),
    ...(flags.disk !== undefined ? { disk: flags.disk } : {}),
  };
}

/** `--arch` as given (a list), else this machine's. */
export function recipeArchs(flags: { arch: string[] }): string[] {
  // amd64 and x86_64 are one architecture: named as apk names it, built once.
  return flags.arch.length > 0 ? [...new Set(flags.arch.map((a) => archInfo(a)?.arch ?? a))] : [hostArch()];
}

/** Steps of a foreign architecture need a binfmt_misc emulator on this machine; say what is missing. */
export function checkArchRunnable(arch: string, binfmtDir = '/proc/sys/fs/binfmt_misc'): void {
  const host = hostArch();
  if (arch === host) return;
  const handler = `${binfmtDir}/qemu-${arch}`;
  if (existsSync(handler)) return;
  throw new BuilderError(`--arch ${arch}: this ${host} machine cannot run ${arch} steps: no binfmt_misc handler ${handler} (install qemu-user-static and register it)`);
}

async function preloadCache(source: string, cacheDir: string): Promise<void> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) throw new BuilderError(`--cache-source: ${source}: only a local directory is supported`);
  if (!existsSync(source)) throw new BuilderError(`--cache-source: ${source}: no such directory`);
  await cp(source, cacheDir, { recursive: true, force: false, errorOnExist: false });
}

export interface SandboxSetup {
  runners: Runner[];
  environmentProvider: EnvironmentProvider;
  environment: EnvironmentAdditions;
}

/** The runners and root provider, loaded only by the commands that run steps (`compile` does not pay for them). */
export async function sandboxSetup(flags: SandboxFlags, signal: AbortSignal): Promise<SandboxSetup> {
  const [{ BubblewrapRunner }, { QemuRunner }, { SelectingProvider }, { defaultRootCacheDir }] = await Promise.all([
    import('../runners/bubblewrap.ts'),
    import('../runners/qemu/runner.ts'),
    import('../environment/select.ts'),
    import('../environment/root-provider.ts'),
  ]);
  const bootSeconds = Number(flags.vmBootTimeout);
  if (!Number.isFinite(bootSeconds) || bootSeconds <= 0) throw new UsageError(`--vm-boot-timeout: "${flags.vmBootTimeout}" is not a positive number of seconds`);
  return {
    // `--runner auto` takes the first usable: the fast namespace sandbox, then the VM.
    runners: [
      new BubblewrapRunner({ debug: flags.debug }),
      new QemuRunner({
        artifactDir: flags.vmArtifactDir,
        kernel: flags.kernel,
        kernelModules: flags.kernelModules,
        initramfs: flags.initramfs,
        accel: flags.accel,
        machine: flags.machine,
        cpu: flags.cpu,
        memory: flags.memory,
        ...(flags.cpumodel ? { cpuModel: flags.cpumodel } : {}),
        bootTimeoutMs: bootSeconds * 1000,
        debug: flags.debug,
        signal,
      }),
    ],
    environmentProvider: new SelectingProvider({ cacheDir: flags.rootCacheDir ?? defaultRootCacheDir(), apkCacheDir: flags.apkCacheDir, packageMap: flags.packageMap, debug: flags.debug, signal }),
    environment: {
      base: flags.base,
      repositoryAppend: flags.repositoryAppend,
      keyringAppend: flags.keyringAppend,
      packageAppend: flags.packageAppend,
      ignoreSignatures: flags.ignoreSignatures,
    },
  };
}

export const ROOTS_HELP = `
Roots: a hermetic root is made from what the recipe declares (environment.contents: a base such as
debian:bookworm:gcc,make in repositories or --base, plus APK repositories and packages) and cached by the
digest of its inputs. A recipe that declares neither runs in the host's /usr, /etc (read-only, NOT hermetic);
--base host asks for that explicitly. See docs/environments.md.`;
