// Options shared by every command that runs steps in a sandbox (`build`, `test`): the runner, the build
// root and the workspace. One definition, so the commands cannot drift apart.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import type { EnvironmentAdditions } from '../seams.ts';
import type { EnvironmentProvider } from '../environment/provider.ts';
import { defaultRootCacheDir } from '../environment/root-provider.ts';
import { SelectingProvider } from '../environment/select.ts';
import { hostArch } from '../pipeline/arch.ts';
import { UsageError } from '../errors.ts';
import { BubblewrapRunner } from '../runners/bubblewrap.ts';
import { QemuRunner } from '../runners/qemu/runner.ts';
import type { Runner } from '../runners/runner.ts';
import { collect } from './options.ts';

export interface SandboxFlags {
  runner: string;
  arch: string;
  pipelineDir: string[];
  buildOption: string[];
  base?: string;
  repositoryAppend: string[];
  keyringAppend: string[];
  packageAppend: string[];
  ignoreSignatures: boolean;
  apkCacheDir?: string;
  rootCacheDir: string;
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
}

export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'builder');
}

export function addSandboxOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--runner <name>', 'sandbox to run steps in').choices(['bubblewrap', 'qemu', 'auto']).default('auto'))
    .option('--arch <arch>', 'target architecture', hostArch())
    .option('--pipeline-dir <dir>', 'directory of pipeline definitions searched before the built-ins (repeatable)', collect, [])
    .option('--build-option <name>', 'enable a recipe build option from `options` (repeatable)', collect, [])
    .option('--base <ref>', 'base of the root: debian:SUITE[:PKG,...][@MIRROR], dir:PATH, oci:PATH, oci:REGISTRY/REPO:TAG or host')
    .option('--repository-append <repo>', "APK repository (directory or URL) added to the recipe's (repeatable)", collect, [])
    .option('--keyring-append <key>', 'public key trusted for repositories (repeatable)', collect, [])
    .option('--package-append <pkg>', 'package added to the environment (repeatable)', collect, [])
    .option('--ignore-signatures', 'accept unsigned or untrusted repository indexes and packages', false)
    .option('--apk-cache-dir <dir>', 'cache for downloaded packages and indexes (default: <root cache>/downloads)')
    .option('--root-cache-dir <dir>', 'cache of build roots', defaultRootCacheDir())
    .option('--source-dir <dir>', "directory copied into the workspace (default: <recipe dir>/<package name>/ when it exists, else the recipe's folder; .git is never copied)")
    .option('--cache-dir <dir>', 'cache mounted at /var/cache/melange', defaultCacheDir())
    .option('--workspace-dir <dir>', 'where the temp workspace is created (default: the system temp dir)')
    .option('--build-date <date>', "timestamp for every file, seconds or ISO 8601 (SOURCE_DATE_EPOCH wins; default: the recipe's git commit time, else 0)")
    .option('--debug', 'trace every shell command (set -x)', false)
    .option('--keep-workspace', 'keep the workspace after success (always kept on failure)', false)
    .option('--kernel <file>', 'qemu runner: guest kernel image (else QEMU_KERNEL_IMAGE, else the newest /boot/vmlinuz-*)')
    .option('--kernel-modules <dir>', 'qemu runner: modules for that kernel (else QEMU_KERNEL_MODULES, else /lib/modules/<release>)')
    .option('--initramfs <file>', 'qemu runner: base initramfs (else QEMU_BASE_INITRAMFS, else built and cached on first use)')
    .addOption(new Option('--accel <accel>', 'qemu runner: accelerator; auto probes KVM and falls back to TCG').choices(['auto', 'kvm', 'tcg']).default('auto'))
    .addOption(new Option('--machine <type>', 'qemu runner: machine type').choices(['q35', 'microvm']).default('q35'))
    .option('--cpu <n>', 'qemu runner: vCPUs (default: package.resources.cpu, capped to the host)')
    .option('--memory <size>', 'qemu runner: memory, e.g. 2G (default: package.resources.memory, capped to the host)')
    .option('--vm-boot-timeout <seconds>', 'qemu runner: how long a boot may take before it is retried once', '60');
}

export interface SandboxSetup {
  runners: Runner[];
  environmentProvider: EnvironmentProvider;
  environment: EnvironmentAdditions;
}

export function sandboxSetup(flags: SandboxFlags, signal: AbortSignal): SandboxSetup {
  const bootSeconds = Number(flags.vmBootTimeout);
  if (!Number.isFinite(bootSeconds) || bootSeconds <= 0) throw new UsageError(`--vm-boot-timeout: "${flags.vmBootTimeout}" is not a positive number of seconds`);
  return {
    // `--runner auto` takes the first usable: the fast namespace sandbox, then the VM.
    runners: [
      new BubblewrapRunner({ debug: flags.debug }),
      new QemuRunner({
        cacheDir: flags.cacheDir,
        kernel: flags.kernel,
        kernelModules: flags.kernelModules,
        initramfs: flags.initramfs,
        accel: flags.accel,
        machine: flags.machine,
        cpu: flags.cpu,
        memory: flags.memory,
        bootTimeoutMs: bootSeconds * 1000,
        debug: flags.debug,
        signal,
      }),
    ],
    environmentProvider: new SelectingProvider({ cacheDir: flags.rootCacheDir, apkCacheDir: flags.apkCacheDir, signal }),
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
