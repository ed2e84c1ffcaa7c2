// The guest hook's converter (src/initramfs/guest/observe.awk), run with the VM's own busybox on trace text
// recorded from a real VM (fixtures/scenario.*, made by record-trace.ts) and on lines derived from it.
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { fixture, runConverter } from './helpers.ts';

type Ev = Record<string, unknown>;

const byFunction = (events: Ev[], fn: string): Ev[] => events.filter((e) => e.function === fn);
const execs = (events: Ev[]): Ev[] => events.filter((e) => e.type === 'exec');
const withoutTiming = ({ time: _t, comm: _c, ...rest }: Ev): Ev => rest;

// Lines as recorded from the VM (pids, addresses and timestamps are those of the recording).
const REAL = {
  fork: '              sh-219     [000] .....     4.826000: task_newtask: pid=221 comm=sh clone_flags=1200000 oom_score_adj=0',
  argv1: '              sh-221     [000] .....     4.830335: argv1: (__x64_sys_execve+0x0/0x40) p0=0x189259e8 p1=0x18925a00 p2=0x18925a18 p3=0x18925a48 p4=0x18925a60 p5=0x18925a80 p6=0x0 p7=0x6c756e2f7665642f p8=0x6c a4="10.0.2.2" a5="45093" a6=(fault) a7=(fault)',
  argv0: '              sh-221     [000] .....     4.830510: argv0: (__x64_sys_execve+0x0/0x40) p0=0x189259e8 p1=0x18925a00 p2=0x18925a18 p3=0x18925a48 p4=0x18925a60 a0="busybox" a1="nc" a2="-w" a3="5"',
  exec: '             exe-221     [000] .....     4.834437: sched_process_exec: filename=/proc/self/exe pid=221 old_pid=221',
  setuid: '         busybox-221     [000] .....     4.838028: setuid: (__x64_sys_setuid+0x0/0x10) uid=1000',
  setuidRet: '         busybox-221     [000] .....     4.838211: setuid_ret: (do_syscall_64+0x5d/0x90 <- __x64_sys_setuid) ret=0',
  synSent:
    '         busybox-221     [000] .....     4.840674: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=0 dport=45093 saddr=10.0.2.15 daddr=10.0.2.2 saddrv6=::ffff:10.0.2.15 daddrv6=::ffff:10.0.2.2 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT',
  established:
    '          <idle>-0       [001] ..s3.     4.850250: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=44298 dport=45093 saddr=10.0.2.15 daddr=10.0.2.2 saddrv6=::ffff:10.0.2.15 daddrv6=::ffff:10.0.2.2 oldstate=TCP_SYN_SENT newstate=TCP_ESTABLISHED',
  closed:
    '     ksoftirqd/1-21      [001] ..s2.     4.854906: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=44298 dport=45093 saddr=10.0.2.15 daddr=10.0.2.2 saddrv6=::ffff:10.0.2.15 daddrv6=::ffff:10.0.2.2 oldstate=TCP_FIN_WAIT2 newstate=TCP_CLOSE',
  udp: '         busybox-225     [001] .....     4.971211: udp: (udp_sendmsg+0x0/0xea0) daddr=50462730 saddr=251789322 dport=13568 sport=54922 nfam=0 nport=0 naddr=0',
};

function lines(...l: string[]): string {
  return `${l.join('\n')}\n`;
}

/** The port of the host's server in the recorded scenario (record-trace.ts picks a free one). */
async function serverPort(): Promise<number> {
  const m = /busybox nc -w 5 10\.0\.2\.2 (\d+)/.exec(await fixture('scenario.trace'));
  if (!m) throw new Error('the scenario has no connection to the host server');
  return Number(m[1]);
}

describe('the guest converter on a trace recorded in a real VM', () => {
  it('reproduces what the hook wrote in the VM for the build\'s own processes', async () => {
    const [trace, written] = await Promise.all([fixture('scenario.trace'), fixture('scenario.events.json')]);
    const replayed = (await runConverter(trace)).events.filter((e) => e.scope === 'build');
    const guest = written.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Ev).filter((e) => e.scope === 'build');
    expect(replayed.length).toBeGreaterThan(15);
    // Each tracefs instance stamps its own copy of an event, so times differ by microseconds; task names can
    // change in between (busybox renames itself).
    expect(replayed.map(withoutTiming)).toEqual(guest.map(withoutTiming));
  });

  it('records the programs, arguments, users and scope of the steps', async () => {
    const { events } = await runConverter(await fixture('scenario.trace'));
    const port = await serverPort();
    const nc = execs(events).find((e) => JSON.stringify(e.argv) === JSON.stringify(['busybox', 'nc', '-w', '5', '10.0.2.2', String(port)]));
    expect(nc).toMatchObject({ filename: '/proc/self/exe', binary: '/bin/sh', comm: 'busybox', uid: 1000, argv_complete: true, scope: 'build' });
    // The step's shell, started by the build channel as the build user.
    const step = execs(events).find((e) => e.filename === '/bin/sh' && (e.argv as string[])[2]?.startsWith('busybox nc -w 5'));
    expect(step).toMatchObject({ uid: 1000, scope: 'build' });
    expect(nc!.ppid).toBe(step!.pid);
    // The build channel's plumbing runs as root and is not the build's.
    const plumbing = execs(events).filter((e) => e.filename === '/proc/1/root/bin/busybox');
    expect(plumbing.length).toBeGreaterThan(0);
    expect(plumbing.every((e) => e.scope === 'builder' && e.uid === 0)).toBe(true);
    expect(execs(events).some((e) => e.filename === '/usr/libexec/builder/build-channel' && e.scope === 'builder')).toBe(true);
  });

  it('pairs each TCP connect with its outcome and close', async () => {
    const { events } = await runConverter(await fixture('scenario.trace'));
    const connects = byFunction(events, 'tcp_connect');
    expect(connects).toContainEqual(
      expect.objectContaining({ dst_addr: '10.0.2.2', dst_port: await serverPort(), src_addr: '10.0.2.15', outcome: 'established', process: 'busybox', uid: 1000, scope: 'build' }),
    );
    expect(connects).toContainEqual(expect.objectContaining({ dst_addr: '10.0.2.2', dst_port: 9, outcome: 'failed' }));
    expect(connects).toContainEqual(expect.objectContaining({ family: 'ipv6', dst_addr: '::1', dst_port: 22, outcome: 'established' }));
    for (const c of connects) {
      expect(c.src_port).toBeGreaterThan(0);
      const close = byFunction(events, 'tcp_close').find((e) => e.src_port === c.src_port && e.dst_port === c.dst_port);
      expect(close).toMatchObject({ pid: c.pid, established: c.outcome === 'established' });
    }
  });

  it('records one UDP event per process and destination, with the port decoded from network order', async () => {
    const { events } = await runConverter(await fixture('scenario.trace'));
    const udp = byFunction(events, 'udp_sendmsg');
    // nslookup sent several datagrams to the resolver: one event.
    expect(udp.filter((e) => e.dst_addr === '10.0.2.3')).toEqual([
      expect.objectContaining({ protocol: 'udp', family: 'ipv4', dst_port: 53, src_addr: '10.0.2.15', scope: 'build' }),
    ]);
  });

  it('keeps what it could read of arguments that do not fit', async () => {
    const { events } = await runConverter(await fixture('scenario.trace'));
    const many = execs(events).find((e) => (e.argv as string[] | undefined)?.[2] === 'exit 0');
    expect(many!.argv).toHaveLength(32);
    expect(many!.argv_complete).toBe(false);
    const spaced = execs(events).find((e) => (e.argv as string[] | undefined)?.[3] === 'arg with spaces');
    // The fifth argument has a newline: the rest of that kprobe record is on another line.
    expect(spaced).toMatchObject({ argv: ['/bin/sh', '-c', 'true', 'arg with spaces', 'quote " inside'], argv_complete: false });
    // 6000 characters do not fit in a trace buffer page: no arguments, but the execution is there.
    const long = execs(events).filter((e) => e.filename === '/bin/sh' && e.argv === undefined);
    expect(long.length).toBeGreaterThan(0);
    const odd = execs(events).find((e) => e.filename === '/tmp/odd');
    expect(odd).toMatchObject({ filename_complete: false, scope: 'build' });
  });
});

describe('the guest converter on crafted lines', () => {
  it('joins argv chunks whatever order the kprobes fire in, and resolves /proc/self/exe', async () => {
    for (const order of [[REAL.argv1, REAL.argv0], [REAL.argv0, REAL.argv1]]) {
      const { events } = await runConverter(lines(REAL.fork, ...order, REAL.exec));
      expect(events).toEqual([expect.objectContaining({ type: 'exec', pid: 221, ppid: 219, argv: ['busybox', 'nc', '-w', '5', '10.0.2.2', '45093'], argv_complete: true })]);
    }
  });

  it('ignores argv chunks left over from a failed exec with other arguments', async () => {
    const stale = REAL.argv1.replace('p0=0x189259e8', 'p0=0x11111111').replace('a4="10.0.2.2"', 'a4="stale"');
    const { events } = await runConverter(lines(stale, REAL.argv0, REAL.exec));
    expect(events[0]).toMatchObject({ argv: ['busybox', 'nc', '-w', '5'], argv_complete: false });
  });

  it('follows uid changes only when setuid succeeded', async () => {
    const failed = REAL.setuidRet.replace('ret=0', 'ret=-1');
    const { events } = await runConverter(lines(REAL.setuid, failed, REAL.synSent, REAL.established));
    expect(events[0]).toMatchObject({ function: 'tcp_connect', uid: null });
    const ok = await runConverter(lines(REAL.setuid, REAL.setuidRet, REAL.synSent, REAL.established));
    expect(ok.events[0]).toMatchObject({ uid: 1000 });
    const resuid = await runConverter(
      lines(
        '         busybox-221     [000] .....     4.838028: setresuid: (__x64_sys_setresuid+0x0/0x10) uid=4242',
        '         busybox-221     [000] .....     4.838211: setresuid_ret: (do_syscall_64+0x5d/0x90 <- __x64_sys_setresuid) ret=0',
        REAL.synSent,
      ),
    );
    expect(resuid.events[0]).toMatchObject({ uid: 4242, outcome: 'pending' });
  });

  it('attributes a connection made in softirq context to the process that connected', async () => {
    const { events } = await runConverter(lines(REAL.fork, REAL.argv1, REAL.argv0, REAL.exec, REAL.synSent, REAL.established, REAL.closed));
    const [, connect, close] = events;
    expect(connect).toMatchObject({ function: 'tcp_connect', pid: 221, process: 'busybox', src_port: 44298, time: 4.840674, outcome: 'established' });
    expect(close).toMatchObject({ function: 'tcp_close', pid: 221, process: 'busybox', time: 4.854906, established: true });
  });

  it('reports a connect still waiting at the end as pending', async () => {
    const { events } = await runConverter(lines(REAL.synSent));
    expect(events).toEqual([expect.objectContaining({ function: 'tcp_connect', outcome: 'pending', src_port: 0, dst_port: 45093 })]);
  });

  it('gives a thread\'s connection to its process', async () => {
    const thread = '              sh-221     [000] .....     4.835000: task_newtask: pid=230 comm=sh clone_flags=3d0f00 oom_score_adj=0';
    const fromThread = REAL.synSent.replace('busybox-221', '         x-230');
    const { events } = await runConverter(lines(REAL.fork, REAL.argv0, REAL.exec, thread, fromThread));
    expect(events[1]).toMatchObject({ function: 'tcp_connect', pid: 221, process: 'busybox' });
  });

  it('reports lost events, with their count and CPU', async () => {
    const { events, stats } = await runConverter(lines(REAL.exec, 'CPU:1 [LOST 37 EVENTS]', REAL.synSent));
    expect(events[1]).toEqual({ type: 'lost', time: 4.834437, cpu: 1, count: 37 });
    expect(stats.lost).toBe(37);
  });

  it('finds the header after a task name that contains a newline', async () => {
    const split = REAL.synSent.replace('         busybox-221', 'evil\nname-221');
    const { events, stats } = await runConverter(lines(split, REAL.established));
    expect(events).toEqual([expect.objectContaining({ function: 'tcp_connect', dst_port: 45093, pid: 221, outcome: 'established' })]);
    expect(stats.unparsed).toBe(1);
  });

  it('does not let a forged line in an argument swallow the records after it', async () => {
    // An argument with a newline and the start of an exec record without its end, then the real connect.
    const forged = REAL.argv0.replace('a3="5"', 'a3="x\n             sh-1 [000] .....     1.000000: sched_process_exec: filename=/bin/forged"');
    const { events } = await runConverter(lines(forged, REAL.synSent, REAL.established));
    expect(byFunction(events, 'tcp_connect')).toEqual([expect.objectContaining({ dst_port: 45093, outcome: 'established' })]);
  });

  it('stops at the marker with its token, and only then', async () => {
    const marker = (token: string): string => `              sh-300     [001] .....     9.000000: tracing_mark_write: builder-observe-stop ${token}`;
    const { events, stats } = await runConverter(lines(REAL.exec, marker('0bad'), marker('c0ffee'), REAL.synSent), { vars: { token: 'c0ffee' } });
    expect(events.map((e) => e.type)).toEqual(['exec']);
    expect(stats.marker).toBe(true);
    const without = await runConverter(lines(REAL.exec), { vars: { token: 'c0ffee' } });
    expect(without.stats.marker).toBe(false);
  });

  it('escapes control characters and quotes in strings as JSON', async () => {
    const odd = REAL.exec.replace('filename=/proc/self/exe', 'filename=/tmp/a"b\\c\td\u0001e');
    const { events } = await runConverter(lines(odd));
    expect(events[0]).toMatchObject({ filename: '/tmp/a"b\\c\td\u0001e' });
    expect(events[0]).not.toHaveProperty('filename_complete');
  });

  it('decodes IPv6 UDP destinations, including connected sockets', async () => {
    const udp6 = (fields: string): string => `        resolver-400     [000] .....     7.000000: udp6: (udpv6_sendmsg+0x0/0xc40) sk=0xffff888005a1b000 ${fields}`;
    const connect6 =
      '        resolver-400     [000] .....     6.900000: udp6_connect: (ip6_datagram_connect+0x0/0x40) sk=0xffff888005a1b000 nfam=10 nport=13568 a0=49406 a1=0 a2=0 a3=50331648';
    const { events } = await runConverter(
      lines(
        udp6('nfam=10 nport=47873 a0=3087860000 a1=0 a2=0 a3=16777216'),
        connect6,
        udp6('nfam=0 nport=0 a0=0 a1=0 a2=0 a3=0'),
        udp6('nfam=10 nport=13568 a0=0 a1=0 a2=4294901760 a3=50462730'),
      ),
    );
    expect(events).toEqual([
      expect.objectContaining({ function: 'udp_sendmsg', family: 'ipv6', dst_addr: '2001:db8::1', dst_port: 443 }),
      expect.objectContaining({ function: 'udp_sendmsg', family: 'ipv6', dst_addr: 'fec0::3', dst_port: 53 }),
    ]);
  });

  it('stops writing at max_bytes and counts what it dropped', async () => {
    const { events, stats } = await runConverter(lines(REAL.exec, REAL.exec, REAL.exec), { vars: { max_bytes: '200' } });
    expect(events).toHaveLength(1);
    expect(stats).toMatchObject({ events: 1, dropped: 2 });
  });
});

describe('the converter is plain POSIX awk', () => {
  it('gives the same events under the system awk as under busybox', async () => {
    const system = await execa('sh', ['-c', 'command -v awk'], { reject: false });
    if (system.exitCode !== 0) return;
    const trace = await fixture('scenario.trace');
    const [busybox, other] = await Promise.all([runConverter(trace), runConverter(trace, { awk: [system.stdout.trim()] })]);
    expect(other.lines).toEqual(busybox.lines);
  });
});
