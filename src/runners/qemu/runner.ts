// The QEMU runner: every build step runs inside a real virtual machine with its own kernel. start() checks
// everything it can before starting anything, then boots the VM from the cached base initramfs plus a per-run
// archive (keys, modules), attaches the build root as a snapshot ext4 disk, connects two SSH channels and sends
// the workspace in; run() executes steps over the build channel; terminate() powers the VM off and removes
// every temp file. The control channel stays available to other features (observability) via control().
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chmod, type FileHandle, mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { resolveInside } from '../../archive/safe-extract.ts';
import { BuilderError, errorMessage } from '../../errors.ts';
import type { InitramfsFile } from '../../initramfs/base.ts';
import { collectGuestObservability } from '../../observe/collect.ts';
import type { ObservableRunner } from '../../observe/observable.ts';
import type { ObservabilityResult } from '../../observe/recording.ts';
import type { OutputStream, PodConfig, RunOptions, Runner, Usability } from '../runner.ts';
import { type AcceleratorRequest, chooseAccelerator } from './accel.ts';
import { ALLOW_LIST_GATEWAY, type BootedVm, bootVm, consoleTail, type GuestForward } from './boot.ts';
import { ensureRootImage } from './disk.ts';
import { anonymousRunInitrd, moduleArchive, runArchive, setprivCapabilities, wipeAndClose } from './inject.ts';
import { capabilitySet } from '../../sandbox/bwrap-seal.ts';
import { type KernelEnvironment, type KernelSpec, locateKernel, moduleLoadOrder } from './kernel.ts';
import { generateRunKeys, opensshPrivateKey, publicKeyBlob, type RunKeys, wipeKeys } from './keys.ts';
import { FAST_BOOT_ARGS, hostCpus, hostMemoryMiB, hostTscKhz, machineLayout, type MachineType, parseMemory, resolveResources } from './machine.ts';
import { findQemuTools } from './process.ts';
import { pvhKernel } from './pvh.ts';
import { ensureSealedBaseInitramfs, openArtifactDir, refuseSandboxWritable } from './seal.ts';
import { SshConnection } from './ssh.ts';
import { processAlive } from '../../os/process.ts';
import { packDirectory } from './workspace.ts';
import { saveCache, uploadCache } from './cache.ts';
import { stepResources } from './resources.ts';

export const DEFAULT_BOOT_TIMEOUT_MS = 60_000;
/** Where the build root and the workspace are inside the guest. */
const GUEST_ROOT = '/mnt/root';
const GUEST_WORKSPACE = `${GUEST_ROOT}/home/build`;
const SSH_READY_TIMEOUT_MS = 30_000;
/** After `poweroff -f`, how long QEMU gets to exit on its own before SIGTERM, then SIGKILL. */
const POWEROFF_GRACE_MS = 3000;
const SIGTERM_GRACE_MS = 2000;
const SIGNALS: Record<string, number> = { HUP: 1, INT: 2, QUIT: 3, ILL: 4, ABRT: 6, FPE: 8, KILL: 9, SEGV: 11, PIPE: 13, ALRM: 14, TERM: 15 };

export interface QemuRunnerOptions {
  /** --kernel; else QEMU_KERNEL_IMAGE; else /boot/vmlinuz (newest). */
  kernel?: string;
  /** --kernel-modules; else QEMU_KERNEL_MODULES; else beside the image or /lib/modules/<release>. */
  kernelModules?: string;
  /** --initramfs; else QEMU_BASE_INITRAMFS; else the cached base archive (built on first use). */
  initramfs?: string;
  accel?: AcceleratorRequest;
  machine?: MachineType;
  /** --cpu / --memory: explicit sizes (an error when larger than the host); else package.resources, capped. */
  cpu?: string;
  memory?: string;
  /** --cpumodel: qemu's -cpu model (default: host with KVM, max with TCG). */
  cpuModel?: string;
  /** --vm-boot-timeout, in ms. */
  bootTimeoutMs?: number;
  /**
   * The sealed VM artifact directory (base initramfs, module archives, PVH kernels, disk images, the KVM
   * probe verdict): never bound into any sandbox, so never under --cache-dir (refused when it overlaps).
   */
  artifactDir: string;
  debug?: boolean;
  log?: (line: string) => void;
  /** Aborts start() (and with it any boot in progress); e.g. Ctrl-C. */
  signal?: AbortSignal;
  /** Where QEMU_* variables are read (default process.env). */
  env?: KernelEnvironment & { QEMU_BASE_INITRAMFS?: string };
  qemuBinary?: string;
  /**
   * Boot the kernel's uncompressed ELF image through PVH when the kernel supports it (default true): the
   * vmlinux is extracted from the bzImage once and cached, and each boot skips decompression.
   */
  pvh?: boolean;
  /** Extra kernel command-line arguments (debugging). */
  kernelArgs?: string[];
  /** Extra files and packages for the base initramfs (the observability hook is always there). */
  initramfsFiles?: InitramfsFile[];
  initramfsPackages?: string[];
  /** Parent directory of the per-VM private temp dir (default: the system temp dir). */
  tempDir?: string;
}

export interface ControlOptions {
  stdin?: Readable;
  onOutput?: (stream: OutputStream, chunk: Buffer) => void;
  signal?: AbortSignal;
  /** Output kept in the result per stream (default 1 MiB); the rest is counted as truncated. */
  maxOutputBytes?: number;
}

export interface ControlResult {
  code: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: Buffer;
  truncated: boolean;
}

/** Timings of the last start(), for logs and the benchmark. */
export interface StartTimings {
  /** Checks, accelerator choice, and the cached (or newly made) initramfs, modules, disk image and kernel. */
  prepareMs: number;
  /** Keys, run archive, the VM's initrd. */
  injectMs: number;
  /** QEMU start to the SSH banner, retries included. */
  bootMs: number;
  /** The control channel's SSH handshake. */
  connectMs: number;
  /** The workspace into the VM, overlapping the build channel's handshake. */
  uploadMs: number;
  attempts: number;
}

/** POSIX shell single quoting: safe for any string without NUL. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`;
}

const COMPRESSION_MAGIC: [string, Buffer][] = [
  ['gzip', Buffer.from([0x1f, 0x8b])],
  ['cpio', Buffer.from('070701', 'latin1')],
  ['cpio', Buffer.from('070702', 'latin1')],
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ['lz4', Buffer.from([0x02, 0x21, 0x4c, 0x18])],
  ['bzip2', Buffer.from('BZh', 'latin1')],
  ['lzma', Buffer.from([0x5d, 0x00, 0x00])],
  ['lzo', Buffer.from([0x89, 0x4c, 0x5a, 0x4f])],
];

/** A user-given initramfs must be readable and look like one (cpio or a compression the kernel unpacks). */
async function checkInitramfs(path: string, flag: string): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new BuilderError(`${flag}: cannot read initramfs ${path} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
  }
  try {
    const head = Buffer.alloc(8);
    const { bytesRead } = await fh.read(head, 0, 8, 0);
    if (!COMPRESSION_MAGIC.some(([, magic]) => bytesRead >= magic.length && head.subarray(0, magic.length).equals(magic))) {
      throw new BuilderError(`${flag}: ${path} is not an initramfs (neither a newc cpio archive nor a compressed one)`);
    }
  } catch (err) {
    if (err instanceof BuilderError) throw err;
    throw new BuilderError(`${flag}: cannot read initramfs ${path} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
  } finally {
    await fh.close();
  }
}

/** Parses package.resources.disk into bytes of headroom, or undefined for the default. */
function diskHeadroom(disk: string | undefined): number | undefined {
  if (disk === undefined || disk.trim() === '') return undefined;
  return parseMemory(disk, 'package.resources.disk') * 1024 * 1024;
}

/** Run by the user-mode network for each allowed connection. */
const FORWARDER = fileURLToPath(new URL('./forward.ts', import.meta.url));

/**
 * The guest-side destinations of --network-allow, enforced at connect time (restrict=on plus one forward per
 * destination) when the user-mode network can forward every one of them: the gateway 10.0.2.2, i.e. services
 * on the host's loopback. Otherwise undefined: the network stays open and the list is judged after the build.
 */
async function guestForwards(allow: { host: string; port: number }[], log: (line: string) => void): Promise<GuestForward[] | undefined> {
  const forwards: GuestForward[] = [];
  const unforwardable: string[] = [];
  for (const rule of allow) {
    const addrs = net.isIP(rule.host) ? [rule.host] : (await lookup(rule.host, { all: true }).catch(() => [])).map((a) => a.address);
    for (const addr of addrs) {
      // The user-mode network forwards only addresses of its own subnet; of those only the gateway (the
      // host's loopback) leads anywhere.
      if (addr === '10.0.2.2') forwards.push({ addr, port: rule.port, hostAddr: '127.0.0.1' });
      else unforwardable.push(`${rule.host}:${rule.port}`);
    }
  }
  if (unforwardable.length > 0) {
    log(`network: ${[...new Set(unforwardable)].join(', ')} cannot be forwarded by the VM's user-mode network, so --network-allow is checked after the build rather than at connect time`);
    return undefined;
  }
  return forwards;
}

/** Removes private temp dirs left by builder processes that no longer exist (killed outright). */
async function sweepStaleTempDirs(parent: string): Promise<void> {
  const uid = process.getuid?.();
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    const m = /^builder-qemu-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    if (processAlive(pid)) continue;
    const dir = join(parent, name);
    const st = await stat(dir).catch(() => undefined);
    if (st?.isDirectory() && (uid === undefined || st.uid === uid)) await rm(dir, { recursive: true, force: true });
  }
}

interface Running {
  pod: PodConfig;
  vm: BootedVm;
  control: SshConnection;
  build: SshConnection;
}

export class QemuRunner implements Runner, ObservableRunner {
  readonly name = 'qemu';
  readonly #options: QemuRunnerOptions;
  #log: (line: string) => void;
  // After terminate() the runner is idle again: one instance serves builds and tests one VM after another.
  #state: 'idle' | 'starting' | 'running' = 'idle';
  #starting: Promise<void> | undefined;
  #startAbort = new AbortController();
  #running: Running | undefined;
  #workDir: string | undefined;
  #keys: RunKeys | undefined;
  /** The nameless initrd holding the run's host key, open until the guest has it in memory. */
  #initrd: FileHandle | undefined;
  #vm: BootedVm | undefined;
  #connections: SshConnection[] = [];
  #timings: StartTimings | undefined;

  constructor(options: QemuRunnerOptions) {
    this.#options = options;
    this.#log = options.log ?? (() => undefined);
  }

  get timings(): StartTimings | undefined {
    return this.#timings;
  }

  /** The loopback port forwarded to the guest's SSH server, while the VM runs. */
  get sshPort(): number | undefined {
    return this.#vm?.port;
  }

  /** The guest console log of the running VM (for debugging). */
  get consoleLog(): string | undefined {
    return this.#vm?.consoleLog;
  }

  async testUsability(): Promise<Usability> {
    try {
      await findQemuTools(this.#options.qemuBinary);
      await locateKernel({ kernel: this.#options.kernel, kernelModules: this.#options.kernelModules, env: this.#env() });
      return { usable: true };
    } catch (err) {
      const details = err instanceof BuilderError && err.details.length > 0 ? ` — ${err.details.join(' ')}` : '';
      return { usable: false, reason: `${errorMessage(err)}${details}` };
    }
  }

  #env(): KernelEnvironment & { QEMU_BASE_INITRAMFS?: string } {
    return this.#options.env ?? (process.env as KernelEnvironment & { QEMU_BASE_INITRAMFS?: string });
  }

  async start(pod: PodConfig, stop?: AbortSignal): Promise<void> {
    if (this.#state !== 'idle') throw new BuilderError(`qemu runner: start() called while ${this.#state}`);
    this.#state = 'starting';
    this.#startAbort = new AbortController();
    this.#log = pod.log ?? this.#options.log ?? (() => undefined);
    const signals = [this.#startAbort.signal, ...(this.#options.signal ? [this.#options.signal] : []), ...(stop ? [stop] : [])];
    const signal = AbortSignal.any(signals);
    this.#starting = this.#start(pod, signal);
    try {
      await this.#starting;
      this.#state = 'running';
    } catch (err) {
      await this.#teardown();
      this.#state = 'idle';
      if (signal.aborted && !(err instanceof BuilderError && err.name === 'Interrupted')) {
        throw new BuilderError(`${pod.packageName}: VM start interrupted`, { cause: signal.reason ?? err });
      }
      throw err;
    } finally {
      this.#starting = undefined;
    }
  }

  async #start(pod: PodConfig, signal: AbortSignal): Promise<void> {
    const o = this.#options;
    const env = this.#env();
    const t0 = performance.now();
    // Everything that can be checked is checked before anything is started or written.
    const tools = await findQemuTools(o.qemuBinary);
    const kernel = await locateKernel({ kernel: o.kernel, kernelModules: o.kernelModules, env });
    const givenInitramfs = o.initramfs ?? (env.QEMU_BASE_INITRAMFS || undefined);
    if (givenInitramfs !== undefined) await checkInitramfs(givenInitramfs, o.initramfs !== undefined ? '--initramfs' : 'QEMU_BASE_INITRAMFS');
    const rootDir = pod.root.directory;
    if (rootDir === undefined) {
      throw new BuilderError(
        `${pod.packageName}: the qemu runner needs the build root as one directory, and the root "${pod.root.description}" is not one (use an environment such as dir:PATH or a Debian/APK root)`,
      );
    }
    if (pod.mounts.length > 0) {
      throw new BuilderError(`${pod.packageName}: the qemu runner cannot share extra host directories with the VM (${pod.mounts.map((m) => m.target).join(', ')})`);
    }
    // The steps get exactly the capabilities Bubblewrap would give them (setpriv in the guest applies them).
    const capabilities = setprivCapabilities(capabilitySet({ label: pod.packageName, runAs: pod.runAs, capabilities: pod.capabilities }));
    // Nothing a sandbox can write is ever booted: the artifact store is apart from the melange cache, and
    // user-given boot files must not lie inside it either.
    const sandboxWritable = [pod.cacheDir];
    await openArtifactDir(o.artifactDir, sandboxWritable);
    await refuseSandboxWritable(kernel.image, '--kernel', sandboxWritable);
    await refuseSandboxWritable(kernel.modulesDir, '--kernel-modules', sandboxWritable);
    if (givenInitramfs !== undefined) await refuseSandboxWritable(givenInitramfs, o.initramfs !== undefined ? '--initramfs' : 'QEMU_BASE_INITRAMFS', sandboxWritable);
    const machine = o.machine ?? 'q35';
    const resources = resolveResources({
      cpuFlag: o.cpu,
      memoryFlag: o.memory,
      resources: pod.resources,
      host: { cpus: hostCpus(), memoryMiB: await hostMemoryMiB() },
      log: this.#log,
    });
    const headroom = diskHeadroom(pod.resources.disk);
    const tscKhz = machine === 'microvm' ? await hostTscKhz() : undefined;
    if (machine === 'microvm' && tscKhz === undefined) {
      this.#log('microvm: could not determine the host TSC rate; boots may hang (the retry covers some)');
    }
    const layout = machineLayout(machine, tscKhz);
    const forwards = pod.network && pod.networkAllow?.length ? await guestForwards(pod.networkAllow, this.#log) : undefined;
    const allowed = forwards ? { forwards, command: [process.execPath, FORWARDER] } : undefined;
    const accel = await chooseAccelerator({ requested: o.accel ?? 'auto', tools, kernel: kernel.image, machine, artifactDir: o.artifactDir, log: this.#log, signal });
    signal.throwIfAborted();

    const tempParent = o.tempDir ?? os.tmpdir();
    await sweepStaleTempDirs(tempParent);
    this.#workDir = await mkdtemp(join(tempParent, `builder-qemu-${process.pid}-`));
    process.on('exit', this.#onExit);
    await chmod(this.#workDir, 0o700);

    // Settled together, so that nothing is still writing into the cache when a failure is reported.
    const prepared = await Promise.allSettled([
      givenInitramfs !== undefined ? Promise.resolve(givenInitramfs) : ensureSealedBaseInitramfs({ cacheDir: o.artifactDir, log: this.#log, signal, files: o.initramfsFiles, packages: o.initramfsPackages }).then((b) => b.path),
      (async () => {
        const order = await moduleLoadOrder(kernel, layout.modules, signal);
        return moduleArchive(kernel, order, o.artifactDir, this.#log);
      })(),
      ensureRootImage({ root: rootDir, artifactDir: o.artifactDir, headroomBytes: headroom, log: this.#log, signal }),
      this.#bootKernel(kernel),
    ] as const);
    const failedPrep = prepared.find((p) => p.status === 'rejected');
    if (failedPrep) throw (failedPrep as PromiseRejectedResult).reason;
    const [base, modulesFragment, image, bootKernel] = prepared.map((p) => (p as PromiseFulfilledResult<unknown>).value) as [string, string, { path: string }, string];
    signal.throwIfAborted();
    const t1 = performance.now();

    this.#keys = generateRunKeys();
    const run = await runArchive(this.#keys, { runAs: pod.runAs, network: pod.network, capabilities, ...(allowed ? { gateway: ALLOW_LIST_GATEWAY } : {}) });
    this.#initrd = await anonymousRunInitrd(this.#workDir, base, modulesFragment, run);
    run.fill(0);
    const t2 = performance.now();

    const plan = {
      tools,
      accel,
      layout,
      resources,
      kernel: bootKernel,
      // QEMU opens our descriptor's magic link: a file nobody else can name.
      initrd: `/proc/${process.pid}/fd/${this.#initrd.fd}`,
      rootImage: image.path,
      network: pod.network,
      ...(allowed ? { allowed } : {}),
      kernelArgs: o.kernelArgs ?? [],
      workDir: this.#workDir,
      ...(o.cpuModel ? { cpuModel: o.cpuModel } : {}),
    };
    this.#log(`booting ${machine} VM (${accel}, ${resources.cpus} vCPU, ${resources.memoryMiB} MiB, kernel ${kernel.release})`);
    const vm = await bootVm(plan, { timeoutMs: o.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS, fastBootArgs: FAST_BOOT_ARGS, log: this.#log, signal });
    this.#vm = vm;
    // From here an interruption kills the VM at once, which also ends any SSH handshake or transfer in flight.
    const killOnAbort = (): void => vm.process.kill('SIGKILL');
    signal.addEventListener('abort', killOnAbort, { once: true });
    if (o.debug) this.#log(`qemu ${vm.args.join(' ')}`);
    const t3 = performance.now();

    let t4 = 0;
    let t5 = 0;
    try {
      const hostKey = publicKeyBlob(this.#keys.host);
      const track = (c: SshConnection): SshConnection => {
        this.#connections.push(c);
        return c;
      };
      const connectingControl = SshConnection.connect({ port: vm.port, socket: vm.socket, username: 'root', privateKey: opensshPrivateKey(this.#keys.control), hostKey, readyTimeoutMs: SSH_READY_TIMEOUT_MS, what: 'control channel' }).then(track);
      const connectingBuild = SshConnection.connect({ port: vm.port, username: 'root', privateKey: opensshPrivateKey(this.#keys.build), hostKey, readyTimeoutMs: SSH_READY_TIMEOUT_MS, what: 'build channel' }).then(track);
      // Whichever fails first is reported; the other is awaited too, so nothing is left half-open.
      connectingBuild.catch(() => undefined);
      const control = await connectingControl.catch(async (err: unknown) => {
        await connectingBuild.catch(() => undefined);
        throw err;
      });
      // The guest has unpacked the initrd into its memory; the copy with the host key has done its job.
      const initrd = this.#initrd;
      this.#initrd = undefined;
      await wipeAndClose(initrd);
      t4 = performance.now();

      // The workspace goes in while the build channel is still shaking hands.
      const uploading = control.exec(`tar -x -f - -C ${GUEST_WORKSPACE}`, {
        stdin: packDirectory(pod.workspaceDir, { uid: pod.runAs.uid, gid: pod.runAs.gid, signal }),
        onStderr: (chunk) => this.#log(`workspace upload: ${chunk.toString('utf8').trimEnd()}`),
        signal,
      });
      const [build, upload] = await Promise.all([connectingBuild, uploading]).catch(async (err: unknown) => {
        await Promise.allSettled([connectingBuild, uploading]);
        throw err;
      });
      if (upload.code !== 0) throw new BuilderError(`${pod.packageName}: sending the workspace into the VM failed (guest tar exit ${upload.code ?? upload.signal})`);
      await uploadCache(pod, control, this.#log, signal);
      this.#running = { pod, vm, control, build };
      t5 = performance.now();
    } finally {
      signal.removeEventListener('abort', killOnAbort);
    }
    this.#timings = {
      prepareMs: t1 - t0,
      injectMs: t2 - t1,
      bootMs: t3 - t2,
      connectMs: t4 - t3,
      uploadMs: t5 - t4,
      attempts: vm.attempts,
    };
  }

  /** The vmlinux to boot through PVH, or the bzImage (with the reason logged). */
  async #bootKernel(kernel: KernelSpec): Promise<string> {
    if (this.#options.pvh === false) return kernel.image;
    const outcome = await pvhKernel(kernel, this.#options.artifactDir, this.#log);
    if (outcome.path === null) {
      this.#log(`kernel: booting the bzImage (${outcome.reason})`);
      return kernel.image;
    }
    if (outcome.extracted) this.#log(`kernel: extracted ${outcome.path} for PVH boot`);
    return outcome.path;
  }

  #requireRunning(): Running {
    if (this.#state !== 'running' || this.#running === undefined) throw new BuilderError(`qemu runner: the VM is not running (state ${this.#state})`);
    return this.#running;
  }

  async run(argv: string[], options: RunOptions): Promise<number> {
    const running = this.#requireRunning();
    const pkg = running.pod.packageName;
    if (argv.length === 0) throw new BuilderError(`${pkg}: empty command`);
    if (!options.workdir.startsWith('/')) throw new BuilderError(`${pkg}: working directory ${options.workdir} is not an absolute path`);
    const words: string[] = [options.workdir];
    for (const [key, value] of Object.entries(options.env)) {
      if (key === '' || key.includes('=') || key.includes('\0') || value.includes('\0')) {
        throw new BuilderError(`${pkg}: invalid environment variable ${JSON.stringify(key)}`);
      }
      words.push(`${key}=${value}`);
    }
    words.push('--', ...argv);
    for (const w of argv) if (w.includes('\0')) throw new BuilderError(`${pkg}: command argument contains a NUL byte`);
    const { signal } = options;
    if (signal?.aborted) throw new BuilderError(`${pkg}: command aborted before it started`, { cause: signal.reason });

    const id = randomBytes(8).toString('hex');
    const request = new PassThrough();
    request.end(words.map(shellQuote).join(' '));
    let result;
    try {
      result = await running.build.exec(`step ${id}`, {
        stdin: request,
        onStdout: (chunk) => options.onOutput('stdout', chunk),
        onStderr: (chunk) => options.onOutput('stderr', chunk),
        signal,
      });
    } catch (err) {
      if (signal?.aborted) {
        await this.#killStep(id);
        throw new BuilderError(`${pkg}: command aborted: ${argv.join(' ')}`, { cause: signal.reason });
      }
      // The channel failed under the step (e.g. the keepalives went unanswered): say what the guest last said.
      const tail = this.#vm ? await consoleTail(this.#vm.consoleLog) : [];
      throw new BuilderError(`${pkg}: the VM stopped answering while running ${JSON.stringify(argv[0])} (${errorMessage(err)})`, {
        details: tail.length > 0 ? ['last lines of the guest console:', ...tail.map((l) => `  ${l}`)] : ['the guest console is empty'],
        cause: err,
      });
    }
    const measured = await stepResources(running.control, id);
    if (measured.resources) options.onResources?.(measured.resources);
    // busybox time exits with a killed step's bare signal number; the shell's 128+N is what steps report.
    if (measured.signal !== undefined) return 128 + measured.signal;
    if (result.code !== null) return result.code;
    if (result.signal !== null) return 128 + (SIGNALS[result.signal] ?? 0);
    const tail = this.#vm ? await consoleTail(this.#vm.consoleLog) : [];
    throw new BuilderError(`${pkg}: the VM went away while running ${JSON.stringify(argv[0])}`, { details: tail });
  }

  /**
   * Kills an aborted step in the guest (closing its channel does not stop it): the build channel made the
   * step the leader of its own process group, numbered by the pid it recorded.
   */
  async #killStep(id: string): Promise<void> {
    const control = this.#running?.control;
    if (!control || control.isClosed) return;
    const script = [
      'f=/run/builder/steps/$1',
      'pid=$(cat "$f" 2>/dev/null) || exit 0',
      'rm -f "$f"',
      '[ "$pid" -gt 1 ] && kill -KILL -- "-$pid" 2>/dev/null',
      'exit 0',
    ].join('\n');
    await control.exec(['sh', '-c', script, 'sh', id].map(shellQuote).join(' ')).catch(() => undefined);
  }

  /**
   * Runs a command as root in the guest, outside the build root (the control channel). For setup, retrieval
   * and observability; argv is quoted, so no shell interpretation happens unless argv asks for a shell.
   */
  async control(argv: string[], options: ControlOptions = {}): Promise<ControlResult> {
    const running = this.#requireRunning();
    if (argv.length === 0) throw new BuilderError('control: empty command');
    const max = options.maxOutputBytes ?? 1 << 20;
    const kept: Record<OutputStream, Buffer[]> = { stdout: [], stderr: [] };
    const sizes: Record<OutputStream, number> = { stdout: 0, stderr: 0 };
    let truncated = false;
    const keep = (stream: OutputStream, chunk: Buffer): void => {
      options.onOutput?.(stream, chunk);
      const room = max - sizes[stream];
      if (room <= 0) {
        truncated = true;
        return;
      }
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      if (part.length < chunk.length) truncated = true;
      kept[stream].push(Buffer.from(part));
      sizes[stream] += part.length;
    };
    const result = await running.control.exec(argv.map(shellQuote).join(' '), {
      stdin: options.stdin,
      onStdout: (c) => keep('stdout', c),
      onStderr: (c) => keep('stderr', c),
      signal: options.signal,
    });
    return { ...result, stdout: Buffer.concat(kept.stdout), stderr: Buffer.concat(kept.stderr), truncated };
  }

  /** A file from the guest (outside the build root unless the path starts with /mnt/root); null when absent. */
  async readFile(path: string, maxBytes: number): Promise<{ data: Buffer; truncated: boolean } | null> {
    const result = await this.control(['sh', '-c', '[ -f "$1" ] || exit 44; exec head -c "$2" -- "$1"', 'sh', path, String(maxBytes + 1)], {
      maxOutputBytes: maxBytes + 1,
    });
    if (result.code === 44) return null;
    if (result.code !== 0) throw new BuilderError(`cannot read ${path} in the VM: ${result.stderr.toString('utf8').trim() || `exit ${result.code ?? result.signal}`}`);
    const truncated = result.stdout.length > maxBytes;
    return { data: truncated ? result.stdout.subarray(0, maxBytes) : result.stdout, truncated };
  }

  /**
   * Stops the guest's observability hook and reads what it recorded, over the control channel; null when the
   * initramfs has no hook (no sentinel). Call after the last step, before terminate().
   */
  async collectObservability(options: { signal?: AbortSignal } = {}): Promise<ObservabilityResult | null> {
    this.#requireRunning();
    return collectGuestObservability(this, options);
  }

  async workspaceTar(): Promise<Readable | null> {
    const running = this.#requireRunning();
    return running.control.execStream(`tar -c -f - -C ${GUEST_WORKSPACE}/melange-out .`, 'reading melange-out from the VM');
  }

  async releaseData(): Promise<string> {
    const running = this.#requireRunning();
    const root = running.pod.root.directory!;
    try {
      const path = await resolveInside(root, 'etc/os-release', 'build root', true);
      return await readFile(path, 'utf8');
    } catch {
      return '';
    }
  }

  async terminate(): Promise<void> {
    const running = this.#running;
    // What the steps wrote to /var/cache/melange persists, as with melange's bind mount; not after Ctrl-C.
    if (this.#state === 'running' && running && !running.control.isClosed && !this.#options.signal?.aborted) {
      await saveCache(running.pod, running.control, this.#log).catch((err: unknown) => this.#log(`cache: not kept: ${errorMessage(err)}`));
    }
    if (this.#state === 'starting') {
      this.#startAbort.abort(new BuilderError('the VM was terminated while starting'));
      await this.#starting?.catch(() => undefined);
    }
    await this.#teardown();
    this.#state = 'idle';
  }

  /**
   * process.exit() (a second Ctrl-C) runs no asynchronous cleanup: the VM is killed and the temp dir removed
   * synchronously. QEMU would die with us anyway (--pdeathsig); the nameless initrd needs nothing.
   */
  readonly #onExit = (): void => {
    const pid = this.#vm?.process.pid;
    if (pid !== undefined && pid > 0 && !this.#vm?.process.hasExited()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (this.#workDir) rmSync(this.#workDir, { recursive: true, force: true });
  };

  async #teardown(): Promise<void> {
    const vm = this.#vm;
    const control = this.#running?.control;
    if (vm && !vm.process.hasExited()) {
      if (control && !control.isClosed) {
        // The guest has nothing to save (its disk is a snapshot); power off at once. The connection drops with
        // the VM, so the command's own result is not awaited.
        control.exec('poweroff -f').catch(() => undefined);
        const timer = new Promise((resolve) => setTimeout(resolve, POWEROFF_GRACE_MS));
        await Promise.race([vm.process.exited, timer]);
      }
      await vm.process.stop(SIGTERM_GRACE_MS);
    }
    vm?.socket.destroy();
    for (const c of this.#connections) c.close();
    this.#connections = [];
    if (vm && this.#options.debug) {
      for (const line of await consoleTail(vm.consoleLog, 400)) this.#log(`console: ${line}`);
    }
    this.#running = undefined;
    this.#vm = undefined;
    const initrd = this.#initrd;
    this.#initrd = undefined;
    if (initrd) await wipeAndClose(initrd);
    if (this.#workDir) await rm(this.#workDir, { recursive: true, force: true });
    this.#workDir = undefined;
    process.off('exit', this.#onExit);
    if (this.#keys) wipeKeys(this.#keys);
    this.#keys = undefined;
  }
}
