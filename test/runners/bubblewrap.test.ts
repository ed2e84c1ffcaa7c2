import { readFile, writeFile, mkdir, symlink, readdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { BubblewrapRunner } from '../../src/runners/bubblewrap.ts';
import { BuilderError } from '../../src/errors.ts';
import type { BuildRoot } from '../../src/runners/runner.ts';
import { BASE_ENV, Output, hostRoot, makeSandboxDirs, podConfig, runOptions, type Sandbox } from './helpers.ts';

let sandbox: Sandbox;
let root: BuildRoot;
let runner: BubblewrapRunner;

beforeAll(async () => {
  sandbox = await makeSandboxDirs();
  root = await hostRoot();
  runner = new BubblewrapRunner();
  await runner.start(podConfig(sandbox, root));
});

afterAll(async () => {
  await runner.terminate();
  await sandbox.remove();
});

async function sh(script: string, extra: Parameters<typeof runOptions>[1] = {}, r = runner) {
  const output = new Output();
  const code = await r.run(['/bin/sh', '-c', script], runOptions(output, extra));
  return { code, stdout: output.text('stdout'), stderr: output.text('stderr'), output };
}

describe('BubblewrapRunner usability', () => {
  it('is usable with the installed bwrap', async () => {
    expect(await runner.testUsability()).toEqual({ usable: true });
  });

  it('reports a missing bwrap with the package to install', async () => {
    const missing = new BubblewrapRunner({ bwrapPath: path.join(sandbox.dir, 'no-such-bwrap') });
    const usability = await missing.testUsability();
    expect(usability.usable).toBe(false);
    if (!usability.usable) expect(usability.reason).toContain('apt-get install bubblewrap');
    await expect(missing.start(podConfig(sandbox, root))).rejects.toThrow(/bwrap is not installed/);
  });

  it('reports a bwrap that cannot create a sandbox, with its stderr', async () => {
    const fake = path.join(sandbox.dir, 'broken-bwrap');
    await writeFile(fake, '#!/bin/sh\necho "bwrap: No permissions to create new namespace" >&2\nexit 1\n', {
      mode: 0o755,
    });
    const usability = await new BubblewrapRunner({ bwrapPath: fake }).testUsability();
    expect(usability.usable).toBe(false);
    if (!usability.usable) expect(usability.reason).toContain('No permissions to create new namespace');
  });
});

describe('BubblewrapRunner commands', () => {
  it('streams stdout and stderr separately and propagates exit codes', async () => {
    for (const code of [0, 3, 42]) {
      const result = await sh(`echo out-${code}; echo err-${code} >&2; exit ${code}`);
      expect(result.code).toBe(code);
      expect(result.stdout).toBe(`out-${code}\n`);
      expect(result.stderr).toBe(`err-${code}\n`);
    }
  });

  it('delivers output while the command is still running', async () => {
    const output = new Output();
    const go = path.join(sandbox.workspaceDir, 'go-signal');
    let signalled = false;
    const code = await runner.run(
      ['/bin/sh', '-c', 'echo ready; i=0; while [ ! -e /home/build/go-signal ]; do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.05; done; echo done'],
      runOptions(output, {
        onOutput: (stream, chunk) => {
          output.onOutput(stream, chunk);
          // The command only finishes once it sees this file, so this proves output was not held until exit.
          if (!signalled && output.text('stdout').includes('ready')) {
            signalled = true;
            void writeFile(go, '');
          }
        },
      }),
    );
    expect(code).toBe(0);
    expect(output.text('stdout')).toBe('ready\ndone\n');
  });

  it('passes large output through without loss', async () => {
    const output = new Output();
    const code = await runner.run(['/bin/sh', '-c', 'head -c 5000000 /dev/zero; head -c 300000 /dev/zero >&2'], runOptions(output));
    expect(code).toBe(0);
    expect(output.text('stdout').length).toBe(5_000_000);
    expect(output.text('stderr').length).toBe(300_000);
  });

  it('runs as uid/gid 1000 by default, in the builder hostname', async () => {
    const result = await sh('id -u; id -g; hostname');
    expect(result.stdout).toBe('1000\n1000\nbuilder\n');
  });

  it('runs as the configured run-as identity', async () => {
    const other = new BubblewrapRunner();
    await other.start(podConfig(sandbox, root, { runAs: { uid: 2345, gid: 3456 } }));
    expect((await sh('id -u; id -g', {}, other)).stdout).toBe('2345\n3456\n');
  });

  it('gives the command exactly the environment it was passed', async () => {
    const output = new Output();
    const env = { HOME: '/home/build', PATH: '/usr/bin:/bin', SOURCE_DATE_EPOCH: '1700000000', ODD: 'a b=c\nd' };
    const code = await runner.run(['/usr/bin/env', '-0'], runOptions(output, { env }));
    expect(code).toBe(0);
    const seen = Object.fromEntries(
      output
        .text('stdout')
        .split('\0')
        .filter((e) => e !== '')
        .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
    );
    // bwrap always exports PWD for the directory it changed into; nothing else is added, nothing inherited.
    expect(seen).toEqual({ ...env, PWD: '/home/build' });
  });

  it('rejects an environment variable name bwrap cannot set', async () => {
    await expect(runner.run(['true'], runOptions(new Output(), { env: { 'A=B': 'x' } }))).rejects.toThrow(BuilderError);
  });

  it('binds the workspace at /home/build, read-write, and the cache at /var/cache/melange', async () => {
    await writeFile(path.join(sandbox.workspaceDir, 'from-host'), 'hello from host\n');
    await writeFile(path.join(sandbox.cacheDir, 'sha256:abc'), 'cached\n');
    const result = await sh('cat /home/build/from-host /var/cache/melange/sha256:abc; echo made-inside > /home/build/from-sandbox; pwd');
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('hello from host\ncached\n/home/build\n');
    expect(await readFile(path.join(sandbox.workspaceDir, 'from-sandbox'), 'utf8')).toBe('made-inside\n');
  });

  it('creates a missing working directory under /home/build', async () => {
    const result = await sh('pwd; touch here', { workdir: '/home/build/sub/dir/' });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('/home/build/sub/dir\n');
    expect(await readdir(path.join(sandbox.workspaceDir, 'sub', 'dir'))).toEqual(['here']);
  });

  it('keeps the root read-only, including / itself', async () => {
    const result = await sh('touch /usr/x 2>/dev/null && echo usr-writable; touch /etc/x 2>/dev/null && echo etc-writable; touch /x 2>/dev/null && echo root-writable; echo checked');
    expect(result.stdout).toBe('checked\n');
  });

  it('gives each command a fresh, empty, writable /tmp', async () => {
    const first = await sh('ls -A /tmp; stat -c %a /tmp; echo x > /tmp/leftover && echo wrote');
    expect(first.stdout).toBe('1777\nwrote\n');
    const second = await sh('ls -A /tmp');
    expect(second.stdout).toBe('');
  });

  it('denies the syscalls on the seccomp list while ordinary ones work', async () => {
    const result = await sh(
      'grep "^Seccomp:" /proc/self/status; unshare -U true 2>/dev/null && echo unshare-allowed; ' +
        // clone() with CLONE_NEWUSER|SIGCHLD: the path around an `unshare` ban.
        `perl -e 'my $r = syscall(56, 0x10000000 | 17, 0, 0, 0, 0); print $r == -1 ? "clone-denied:" . ($!+0) . "\\n" : ($r == 0 ? exit(0) : "clone-allowed\\n")'; ` +
        'mkdir -p /tmp/m && mount -t tmpfs none /tmp/m 2>/dev/null && echo mount-allowed; ' +
        '(echo forked) && ls / >/dev/null && echo ordinary-ok',
    );
    expect(result.stdout).toBe('Seccomp:\t2\nclone-denied:1\nforked\nordinary-ok\n');
  });

  it('gives the build user no capabilities unless added, and root Docker\'s default set', async () => {
    expect((await sh('grep ^CapEff: /proc/self/status')).stdout).toBe('CapEff:\t0000000000000000\n');

    const withRaw = new BubblewrapRunner();
    await withRaw.start(podConfig(sandbox, root, { capabilities: { add: ['net_raw'], drop: [] } }));
    expect((await sh('grep ^CapEff: /proc/self/status', {}, withRaw)).stdout).toBe('CapEff:\t0000000000002000\n');

    const asRoot = new BubblewrapRunner();
    await asRoot.start(podConfig(sandbox, root, { runAs: { uid: 0, gid: 0 }, capabilities: { add: [], drop: ['CAP_MKNOD'] } }));
    // Docker's default set (a80425fb) without MKNOD (bit 27).
    expect((await sh('id -u; grep ^CapEff: /proc/self/status', {}, asRoot)).stdout).toBe('0\nCapEff:\t00000000a00425fb\n');

    const all = new BubblewrapRunner();
    await expect(all.start(podConfig(sandbox, root, { capabilities: { add: ['CAP_BOGUS'], drop: [] } }))).rejects.toThrow(/unknown capability "CAP_BOGUS"/);
  });

  it('mounts the pod\'s extra mounts, read-only when asked', async () => {
    const extra = path.join(sandbox.dir, 'extra');
    await mkdir(extra, { recursive: true });
    await writeFile(path.join(extra, 'data'), 'extra data\n');
    const other = new BubblewrapRunner();
    await other.start(podConfig(sandbox, root, { mounts: [{ source: extra, target: '/opt/extra', readonly: true }] }));
    const result = await sh('cat /opt/extra/data; touch /opt/extra/x 2>/dev/null && echo writable; echo end', {}, other);
    expect(result.stdout).toBe('extra data\nend\n');
  });

  it('passes stderr that merely looks like a bwrap message through as output', async () => {
    const result = await sh('echo "bwrap: not really" >&2; echo fine');
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('bwrap: not really\n');
    expect(result.stdout).toBe('fine\n');
  });
});

describe('BubblewrapRunner sandbox failures', () => {
  it('rejects with bwrap\'s own message when the sandbox cannot be set up, without reporting it as output', async () => {
    const output = new Output();
    const err = await runner.run(['true'], runOptions(output, { workdir: '/no/such/dir' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuilderError);
    expect((err as Error).message).toContain("Can't chdir to /no/such/dir");
    expect(output.chunks).toEqual([]);
  });

  it('in debug mode, keeps the session and shows the bwrap command line of a failed setup', async () => {
    const debug = new BubblewrapRunner({ debug: true });
    await debug.start(podConfig(sandbox, root));
    expect(debug.commandLine(['true'], { env: {}, workdir: '/home/build' })).not.toContain('--new-session');
    expect(runner.commandLine(['true'], { env: {}, workdir: '/home/build' })).toContain('--new-session');
    const err = (await debug.run(['true'], runOptions(new Output(), { workdir: '/no/such/dir' })).catch((e: unknown) => e)) as BuilderError;
    expect(err.details.at(-1)).toMatch(/^command: \S*bwrap .* --chdir \/no\/such\/dir -- true$/);
  });

  it('rejects when the command cannot be executed', async () => {
    await expect(runner.run(['/no/such/program'], runOptions(new Output()))).rejects.toThrow(/execvp \/no\/such\/program/);
  });

  it('rejects start() for a missing workspace or mount source', async () => {
    const r = new BubblewrapRunner();
    await expect(r.start(podConfig(sandbox, root, { workspaceDir: path.join(sandbox.dir, 'nope') }))).rejects.toThrow(/workspace directory .*nope does not exist/);
    await expect(
      r.start(podConfig(sandbox, root, { mounts: [{ source: path.join(sandbox.dir, 'nope'), target: '/x', readonly: true }] })),
    ).rejects.toThrow(/mount source .*nope \(for \/x\) does not exist/);
    await expect(r.run(['true'], runOptions(new Output()))).rejects.toThrow(/before start/);
  });
});

describe('BubblewrapRunner network', () => {
  let server: net.Server;
  let port = 0;
  let connections = 0;

  beforeAll(async () => {
    server = net.createServer((socket) => {
      connections++;
      socket.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const probe = () => `exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected`;

  it('cannot reach the host network by default', async () => {
    const output = new Output();
    const code = await runner.run(['/bin/bash', '-c', probe()], runOptions(output));
    expect(code).not.toBe(0);
    expect(output.text('stdout')).toBe('');
    expect(connections).toBe(0);
  });

  it('reaches the host network when the pod allows it', async () => {
    const networked = new BubblewrapRunner();
    await networked.start(podConfig(sandbox, root, { network: true }));
    const output = new Output();
    const code = await networked.run(['/bin/bash', '-c', probe()], runOptions(output));
    expect(output.text('stdout')).toBe('connected\n');
    expect(code).toBe(0);
    expect(connections).toBe(1);
  });
});

describe('BubblewrapRunner lifecycle', () => {
  async function running(marker: string): Promise<string> {
    const result = await execa('pgrep', ['-f', marker], { reject: false });
    return result.stdout;
  }

  it('kills a command and everything it started when the signal aborts, leaving no process', async () => {
    const marker = `100.${process.pid}${Math.floor(Math.random() * 1e6)}`;
    const controller = new AbortController();
    const output = new Output();
    const run = runner.run(['/bin/sh', '-c', `echo started; sleep ${marker} & sleep ${marker}; wait`], {
      env: BASE_ENV,
      workdir: '/home/build',
      signal: controller.signal,
      onOutput: (stream, chunk) => {
        output.onOutput(stream, chunk);
        if (output.text('stdout').includes('started')) setTimeout(() => controller.abort(), 100);
      },
    });
    await expect(run).rejects.toThrow(/aborted/);
    expect(await running(marker)).toBe('');
  });

  it('rejects at once for an already-aborted signal', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(runner.run(['true'], runOptions(new Output(), { signal: controller.signal }))).rejects.toThrow(/aborted/);
  });

  it('terminate() kills a running command, and can be called again', async () => {
    const other = new BubblewrapRunner();
    await other.start(podConfig(sandbox, root));
    const marker = `200.${process.pid}${Math.floor(Math.random() * 1e6)}`;
    let started!: () => void;
    const isStarted = new Promise<void>((resolve) => (started = resolve));
    const run = other.run(['/bin/sh', '-c', `echo started; sleep ${marker}`], {
      env: BASE_ENV,
      workdir: '/home/build',
      onOutput: () => started(),
    });
    await isStarted;
    await other.terminate();
    await expect(run).rejects.toThrow(/terminated/);
    await other.terminate();
    expect(await running(marker)).toBe('');
  });

  it('has no workspace tar: the workspace is a bind mount', async () => {
    expect(await runner.workspaceTar()).toBeNull();
  });

  it('reads the host root\'s os-release', async () => {
    const expected = await readFile('/etc/os-release', 'utf8').catch(() => '');
    expect(await runner.releaseData()).toBe(expected);
    if (expected !== '') expect(expected).toMatch(/^ID=/m);
  });

  it('reads os-release through a root directory\'s own symlinks, not the host\'s', async () => {
    const dirRoot = path.join(sandbox.dir, 'dir-root');
    await mkdir(path.join(dirRoot, 'etc'), { recursive: true });
    await mkdir(path.join(dirRoot, 'usr', 'lib'), { recursive: true });
    await writeFile(path.join(dirRoot, 'usr', 'lib', 'os-release'), 'ID=fixture\n');
    // Absolute: resolved on the host, it would name the host's file.
    await symlink('/usr/lib/os-release', path.join(dirRoot, 'etc', 'os-release'));
    const other = new BubblewrapRunner();
    await other.start(podConfig(sandbox, { description: 'dir', mounts: [{ source: dirRoot, target: '/', readonly: true }] }));
    expect(await other.releaseData()).toBe('ID=fixture\n');

    const empty = path.join(sandbox.dir, 'empty-root');
    await mkdir(empty);
    await other.start(podConfig(sandbox, { description: 'dir', mounts: [{ source: empty, target: '/', readonly: true }] }));
    expect(await other.releaseData()).toBe('');
  });

  it('binds the host resolver config for network builds on a root without one it can use', async () => {
    const dirRoot = path.join(sandbox.dir, 'net-root');
    await mkdir(dirRoot);
    const hostHasResolv = await readFile('/etc/resolv.conf').then(() => true, () => false);
    const writable = new BubblewrapRunner();
    await writable.start(podConfig(sandbox, { description: 'dir', mounts: [{ source: dirRoot, target: '/', readonly: false }] }, { network: true }));
    const args = writable.commandLine(['true'], { env: {}, workdir: '/home/build' }).join(' ');
    expect(args.includes('--ro-bind /etc/resolv.conf /etc/resolv.conf')).toBe(hostHasResolv);

    // The host root already shows the host's own file: nothing to add. And no network, no resolver.
    const host = new BubblewrapRunner();
    await host.start(podConfig(sandbox, root, { network: true }));
    expect(host.commandLine(['true'], { env: {}, workdir: '/home/build' })).not.toContain('/etc/resolv.conf');
    await writable.start(podConfig(sandbox, { description: 'dir', mounts: [{ source: dirRoot, target: '/', readonly: false }] }));
    expect(writable.commandLine(['true'], { env: {}, workdir: '/home/build' })).not.toContain('/etc/resolv.conf');
  });
});
