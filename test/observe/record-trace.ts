// Records the fixtures of the converter tests from a real VM: boots the QEMU runner (its base initramfs has the hook),
// mirrors the hook's tracefs events into a second instance whose raw trace_pipe text is kept, runs a scenario
// of steps (programs, odd arguments and names, TCP to a host server, UDP to the resolver, IPv6 loopback), then
// saves the raw trace (<out>.trace), what the hook wrote (<out>.events.json) and its status (<out>.status.json).
//
//   node test/observe/record-trace.ts test/observe/fixtures/scenario
//
// Not a test: the fixtures it writes are checked in, so the converter tests run without a VM.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { QemuRunner } from '../../src/runners/qemu/runner.ts';
import { kernelEnv, makeTempDir, podFor, SHARED_CACHE, testKernel, tinyRoot } from '../runners/qemu/helpers.ts';

const MIRROR_START = `
T=/sys/kernel/tracing
R=$T/instances/record
H=$T/instances/builder-observe
mkdir $R && echo 0 >$R/tracing_on && echo 4096 >$R/buffer_size_kb && echo boot >$R/trace_clock
for f in sched/sched_process_exec task/task_newtask sock/inet_sock_set_state $(cd $H/events && ls -d builder_observe/*/); do
  f=\${f%/}
  [ "$(cat $H/events/$f/enable)" = 1 ] || continue
  flt=$(cat $H/events/$f/filter)
  [ "$flt" = none ] || echo "$flt" >$R/events/$f/filter
  echo 1 >$R/events/$f/enable
done
setsid cat $R/trace_pipe >/run/record.trace 2>/dev/null </dev/null &
echo $! >/run/record.pid
echo 1 >$R/tracing_on
`;

const MIRROR_STOP = `
R=/sys/kernel/tracing/instances/record
echo 0 >$R/events/enable
sleep 1
kill $(cat /run/record.pid)
rmdir $R
cat /run/record.trace
`;

function scenario(port: number): string[] {
  const many = Array.from({ length: 40 }, (_, i) => `arg${i}`).join(' ');
  return [
    // Programs, pipes, a subshell, a script.
    `echo 'echo from-script' >/tmp/script.sh; chmod +x /tmp/script.sh; /tmp/script.sh | cat; (cd /tmp && ls -l >/dev/null); sha256sum /bin/busybox | head -c 8; echo`,
    // TCP: one established (to a server on the host's loopback), one refused.
    `busybox nc -w 5 10.0.2.2 ${port} </dev/null; busybox nc -w 2 10.0.2.2 9 </dev/null || true`,
    // UDP to the VM's resolver; TCP over IPv6 loopback (the SSH server).
    `busybox nslookup example.invalid 10.0.2.3 >/dev/null 2>&1 || true; busybox nc -w 2 ::1 22 </dev/null | head -c 7; echo`,
    // Arguments: more than the hook records, spaces and quotes, a newline, one too long for a trace page.
    `/bin/sh -c 'exit 0' ${many}; /bin/sh -c 'true' "arg with spaces" 'quote " inside' "$(printf 'new\\nline')"; /bin/sh -c true "$(head -c 6000 /dev/zero | tr '\\0' x)"`,
    // A program whose file name has a newline in it.
    `ln -s /bin/busybox "/tmp/odd
name" && "/tmp/odd
name" true || true`,
  ];
}

const out = process.argv[2];
if (!out) throw new Error('usage: node test/observe/record-trace.ts OUTPUT-PREFIX');
const server = net.createServer((socket) => socket.end('hello from the host\n'));
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as net.AddressInfo).port;
const dir = await makeTempDir('builder-observe-record-');
try {
  const workspace = path.join(dir, 'workspace');
  await mkdir(path.join(workspace, 'melange-out'), { recursive: true });
  const root = await tinyRoot(dir);
  const runner = new QemuRunner({
    artifactDir: SHARED_CACHE,
    env: kernelEnv(await testKernel()),
    bootTimeoutMs: 120_000,
  });
  try {
    await runner.start(podFor(root, workspace, { network: true }));
    const control = async (script: string): Promise<Buffer> => {
      const r = await runner.control(['sh', '-c', script], { maxOutputBytes: 1 << 28 });
      if (r.code !== 0) throw new Error(`control command failed (${r.code}): ${r.stderr.toString()}`);
      return r.stdout;
    };
    await control(MIRROR_START);
    for (const step of scenario(port)) {
      const code = await runner.run(['/bin/sh', '-c', step], {
        env: { PATH: '/usr/bin:/bin' },
        workdir: '/home/build',
        onOutput: (_s, chunk) => process.stderr.write(chunk),
      });
      process.stderr.write(`step exit ${code}\n`);
    }
    const status = await control('/etc/builder/hooks.d/observability stop');
    const trace = await control(MIRROR_STOP);
    const events = await control('cat /var/log/observability/events.json');
    await writeFile(`${out}.trace`, trace);
    await writeFile(`${out}.events.json`, events);
    await writeFile(`${out}.status.json`, status);
    process.stderr.write(`recorded ${trace.length} bytes of trace, ${events.length} bytes of events; server port was ${port}\n`);
  } finally {
    await runner.terminate();
  }
} finally {
  server.close();
  await rm(dir, { recursive: true, force: true });
}
