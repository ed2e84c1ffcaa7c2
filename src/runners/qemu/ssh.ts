// SSH to the guest with ssh2: readiness by banner, connections that accept only the host key we injected,
// and command execution with live output, explicit stdin and the exit status.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { Client, type ClientChannel } from 'ssh2';
import { BuilderError } from '../../errors.ts';

/** Dropbear's limit on an exec request's command line is 9000 bytes (MAX_CMD_LEN); stay under it. */
export const MAX_COMMAND_BYTES = 8192;

export class HostKeyMismatchError extends BuilderError {
  override name = 'HostKeyMismatchError';
}

export class SshError extends BuilderError {
  override name = 'SshError';
}

export interface BannerWait {
  port: number;
  /** Absolute time (performance.now()) after which waiting gives up. */
  deadline: number;
  /** Stop early, e.g. when the VM process exited. */
  stopped: () => boolean;
  signal?: AbortSignal;
  /** A new connection attempt starts this often while none has seen the banner. */
  intervalMs?: number;
  /** Each attempt gives up after this long without a banner. */
  attemptTimeoutMs?: number;
}

/**
 * Polls 127.0.0.1:port until an SSH server sends its `SSH-2.0-` identification, and returns that connected
 * socket with the banner pushed back, ready to hand to ssh2. User-mode networking accepts TCP connections
 * before the guest listens, so a successful connect proves nothing and an attempt that gets no banner is
 * abandoned quickly and replaced.
 */
export async function waitForBanner(options: BannerWait): Promise<net.Socket | null> {
  const interval = options.intervalMs ?? 100;
  const attemptTimeout = options.attemptTimeoutMs ?? 600;
  const live = new Set<net.Socket>();
  return new Promise<net.Socket | null>((resolve) => {
    let settled = false;
    let ticker: NodeJS.Timeout | undefined;
    const finish = (winner: net.Socket | null): void => {
      if (settled) return;
      settled = true;
      clearInterval(ticker);
      options.signal?.removeEventListener('abort', onAbort);
      for (const s of live) if (s !== winner) s.destroy();
      live.clear();
      resolve(winner);
    };
    const onAbort = (): void => finish(null);
    const attempt = (): void => {
      if (settled) return;
      if (options.stopped() || performance.now() > options.deadline || options.signal?.aborted) {
        finish(null);
        return;
      }
      // No Nagle: SSH's handshake is a dozen small round trips, each of which would otherwise wait ~40 ms for a
      // delayed ACK.
      const socket = net.connect({ host: '127.0.0.1', port: options.port, noDelay: true });
      live.add(socket);
      let received = Buffer.alloc(0);
      const timer = setTimeout(() => socket.destroy(), attemptTimeout);
      const drop = (): void => {
        clearTimeout(timer);
        live.delete(socket);
      };
      socket.on('error', drop);
      socket.on('close', drop);
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length < 8) return;
        if (received.subarray(0, 8).toString('latin1') === 'SSH-2.0-' && !settled) {
          clearTimeout(timer);
          socket.removeAllListeners('data');
          socket.removeListener('close', drop);
          socket.removeListener('error', drop);
          socket.pause();
          socket.unshift(received);
          finish(socket);
        } else {
          socket.destroy();
        }
      });
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    ticker = setInterval(attempt, interval);
    attempt();
  });
}

export interface ConnectOptions {
  port: number;
  /** An already connected socket (from waitForBanner); otherwise a new connection is made. */
  socket?: net.Socket;
  username: string;
  /** OpenSSH-format private key. */
  privateKey: string;
  /** The only host key accepted: the SSH wire blob of the key injected into the guest. */
  hostKey: Buffer;
  readyTimeoutMs: number;
  /** Named in errors: `control channel`, `build channel`. */
  what: string;
}

export interface ExecResult {
  /** Exit status, or null when the command was killed by a signal or the connection went away. */
  code: number | null;
  signal: string | null;
}

export interface ExecOptions {
  /** Sent as the command's stdin; without it stdin is closed at once (like /dev/null). */
  stdin?: Readable;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  signal?: AbortSignal;
}

/** The form `ssh-keygen -l` prints. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

export class SshConnection {
  readonly #client: Client;
  readonly #what: string;
  #closed = false;
  readonly closed: Promise<void>;

  private constructor(client: Client, what: string) {
    this.#client = client;
    this.#what = what;
    this.closed = new Promise((resolve) => client.once('close', () => resolve()));
    client.once('close', () => {
      this.#closed = true;
    });
    // Errors after the handshake surface through the channels that were open; nothing else to do here.
    client.on('error', () => undefined);
  }

  static connect(options: ConnectOptions): Promise<SshConnection> {
    return new Promise<SshConnection>((resolve, reject) => {
      const client = new Client();
      let offered: Buffer | undefined;
      const fail = (err: Error): void => {
        client.removeAllListeners('ready');
        client.end();
        if (offered !== undefined && !offered.equals(options.hostKey)) {
          reject(
            new HostKeyMismatchError(
              `${options.what}: the VM presented host key ${fingerprint(offered)}, not the one injected into it (${fingerprint(options.hostKey)}); refusing to connect`,
            ),
          );
          return;
        }
        reject(new SshError(`${options.what}: SSH connection to 127.0.0.1:${options.port} failed: ${err.message}`, { cause: err }));
      };
      client.once('error', fail);
      client.once('ready', () => {
        client.removeListener('error', fail);
        resolve(new SshConnection(client, options.what));
      });
      client.connect({
        host: '127.0.0.1',
        port: options.port,
        sock: options.socket,
        username: options.username,
        privateKey: options.privateKey,
        readyTimeout: options.readyTimeoutMs,
        // A guest that stops answering (hung kernel, wedged link) fails the connection within ~60 s instead of
        // leaving a step waiting forever; a busy TCG guest still answers keepalives well inside 10 s.
        keepaliveInterval: 10_000,
        keepaliveCountMax: 6,
        // chacha20-poly1305 moved twice the data per second of AES-CTR + HMAC through dropbear under TCG
        // (docs/qemu-runner.md); the guest's crypto, not the host's, is the bottleneck.
        algorithms: {
          serverHostKey: ['ssh-ed25519'],
          cipher: ['chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes256-ctr'],
          hmac: ['hmac-sha2-256', 'hmac-sha1'],
        },
        // Straight to the key: the server's reply to a "none" attempt would only cost a round trip.
        authHandler: ['publickey'],
        hostVerifier: (key: Buffer) => {
          offered = Buffer.from(key);
          return offered.equals(options.hostKey);
        },
      });
      client.setNoDelay(true);
    });
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  #open(command: string): Promise<ClientChannel> {
    if (this.#closed) return Promise.reject(new SshError(`${this.#what}: the connection to the VM is closed`));
    const bytes = Buffer.byteLength(command);
    if (bytes > MAX_COMMAND_BYTES) {
      // Dropbear refuses longer commands and then drops the whole connection; refuse first, keep the channel.
      return Promise.reject(new SshError(`${this.#what}: a ${bytes}-byte command line is longer than the VM's SSH server accepts (${MAX_COMMAND_BYTES}); send large data on stdin`));
    }
    return new Promise((resolve, reject) => {
      this.#client.exec(command, (err, channel) => {
        if (err) reject(new SshError(`${this.#what}: cannot start a command in the VM: ${err.message}`, { cause: err }));
        else resolve(channel);
      });
    });
  }

  /** Runs `command` (a shell command line on the server) and resolves with its exit status. */
  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const channel = await this.#open(command);
    return new Promise<ExecResult>((resolve, reject) => {
      let result: ExecResult = { code: null, signal: null };
      const onAbort = (): void => {
        channel.close();
        reject(new SshError(`${this.#what}: command aborted`, { cause: options.signal?.reason }));
      };
      if (options.signal?.aborted) {
        onAbort();
        return;
      }
      options.signal?.addEventListener('abort', onAbort, { once: true });
      channel.on('data', (chunk: Buffer) => options.onStdout?.(chunk));
      channel.stderr.on('data', (chunk: Buffer) => options.onStderr?.(chunk));
      channel.on('exit', (code: number | null, signal?: string) => {
        result = { code: code ?? null, signal: signal ?? null };
      });
      channel.once('close', () => {
        options.signal?.removeEventListener('abort', onAbort);
        resolve(result);
      });
      if (options.stdin) {
        options.stdin.on('error', (err) => {
          channel.close();
          reject(new SshError(`${this.#what}: reading the input for the VM failed: ${err.message}`, { cause: err }));
        });
        options.stdin.pipe(channel);
      } else {
        channel.end();
      }
    });
  }

  /**
   * Runs `command` and hands back its stdout as a stream, which errors (instead of ending) if the command
   * fails, with the command's stderr in the message.
   */
  async execStream(command: string, describe: string): Promise<Readable> {
    const channel = await this.#open(command);
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    let stderr = '';
    let result: ExecResult = { code: null, signal: null };
    channel.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4096);
    });
    channel.on('exit', (code: number | null, signal?: string) => {
      result = { code: code ?? null, signal: signal ?? null };
    });
    channel.on('data', (chunk: Buffer) => {
      if (!out.write(chunk)) {
        channel.pause();
        out.once('drain', () => channel.resume());
      }
    });
    channel.once('close', () => {
      if (result.code === 0) out.end();
      else {
        const how = result.code !== null ? `exit code ${result.code}` : result.signal ? `signal ${result.signal}` : 'lost connection';
        out.destroy(new SshError(`${this.#what}: ${describe} failed (${how})${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
      }
    });
    out.on('close', () => {
      if (!out.readableEnded) channel.close();
    });
    channel.end();
    return out;
  }

  close(): void {
    if (!this.#closed) this.#client.end();
  }
}
