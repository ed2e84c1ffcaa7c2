// The network policy: parsing --network-allow, judging connections, naming violations.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.ts';
import type { NetworkConnection } from '../../src/observe/events.ts';
import { parseEventLine } from '../../src/observe/events.ts';
import {
  canonicalAddress,
  connectionAttempts,
  describeViolation,
  evaluateNetworkPolicy,
  isLoopback,
  networkPolicyFromFlags,
  parseNetworkAllow,
  type Resolver,
} from '../../src/observe/policy.ts';
import { QEMU_USER_NET_RESOLVER } from '../../src/observe/collect.ts';
import { wireNet } from './helpers.ts';

const clock = { bootEpochMs: 0 };
function conn(over: Record<string, unknown> = {}): NetworkConnection {
  const e = parseEventLine(JSON.stringify(wireNet(over)), clock);
  if (e?.type !== 'net') throw new Error('bad fixture');
  return e;
}

const resolver: Resolver = async (host) =>
  ({ 'mirror.example': ['192.0.2.10', '2001:db8::10'], 'other.example': ['192.0.2.99'] })[host] ?? [];

describe('--network-allow values', () => {
  it('accepts host names, IPv4 and bracketed IPv6 with a port', () => {
    expect(parseNetworkAllow('example.org:443')).toEqual({ text: 'example.org:443', host: 'example.org', port: 443 });
    expect(parseNetworkAllow('Mirror.Example.:80')).toMatchObject({ host: 'mirror.example', port: 80 });
    expect(parseNetworkAllow('10.0.2.2:8080')).toMatchObject({ host: '10.0.2.2', port: 8080 });
    expect(parseNetworkAllow('[2001:DB8:0:0::1]:53')).toMatchObject({ host: '2001:db8::1', port: 53 });
    expect(parseNetworkAllow('[::ffff:10.0.2.2]:1')).toMatchObject({ host: '10.0.2.2', port: 1 });
  });

  it('refuses malformed values with a usage error naming the flag and the value', () => {
    for (const value of ['example.org', 'example.org:', ':443', 'example.org:0', 'example.org:65536', 'example.org:http', '2001:db8::1:443', '[2001:db8::1]', '[nonsense]:1', 'bad host:1', '1.2.3:80', 'a..b:1', 'x:-1']) {
      expect(() => parseNetworkAllow(value), value).toThrow(UsageError);
      expect(() => parseNetworkAllow(value)).toThrow(`--network-allow ${JSON.stringify(value)}`);
    }
  });

  it('implies network when a list is given', () => {
    expect(networkPolicyFromFlags({})).toEqual({ network: false, allow: [] });
    expect(networkPolicyFromFlags({ network: true })).toEqual({ network: true, allow: [] });
    expect(networkPolicyFromFlags({ networkAllow: ['a.example:1'] })).toMatchObject({ network: true, allow: [{ host: 'a.example', port: 1 }] });
  });
});

describe('addresses', () => {
  it('are compared in one canonical form', () => {
    expect(canonicalAddress('FEC0:0:0:0:0:0:0:2')).toBe('fec0::2');
    expect(canonicalAddress('::ffff:10.0.2.2')).toBe('10.0.2.2');
    expect(canonicalAddress('::ffff:a00:202')).toBe('10.0.2.2');
    expect(isLoopback('127.0.0.53')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopback('10.0.2.2')).toBe(false);
  });
});

describe('judging connections', () => {
  it('allows what the list names (resolving host names), and nothing else', async () => {
    const policy = networkPolicyFromFlags({ networkAllow: ['mirror.example:443', '10.0.2.2:8080', 'nowhere.example:1'] });
    const attempts = [
      conn({ dst_addr: '192.0.2.10', dst_port: 443 }),
      conn({ family: 'ipv6', dst_addr: '2001:db8:0::10', dst_port: 443 }),
      conn({ dst_addr: '10.0.2.2', dst_port: 8080 }),
      conn({ dst_addr: '192.0.2.10', dst_port: 80 }),
      conn({ dst_addr: '192.0.2.99', dst_port: 443, process: 'curl', pid: 7 }),
      conn({ dst_addr: '127.0.0.1', dst_port: 5432 }),
      conn({ function: 'udp_sendmsg', protocol: 'udp', outcome: undefined, dst_addr: '10.0.2.3', dst_port: 53 }),
      conn({ outcome: 'established', dst_addr: '10.0.2.3', dst_port: 53 }),
    ];
    const result = await evaluateNetworkPolicy(attempts, policy, { implicit: [QEMU_USER_NET_RESOLVER], resolve: resolver });
    expect(result.judged.map((j) => j.verdict)).toEqual(['allowed', 'allowed', 'allowed', 'denied', 'denied', 'loopback', 'implicit', 'implicit']);
    expect(result.judged[0]!.reason).toBe('mirror.example:443');
    expect(result.violations.map((v) => v.connection)).toEqual([attempts[3], attempts[4]]);
    expect(result.unresolved).toEqual(['nowhere.example']);
    expect(describeViolation(result.violations[1]!)).toBe('curl (pid 7, /usr/bin/curl) connected to 192.0.2.99:443/tcp, which --network-allow does not list');
  });

  it('with network but no list, allows everything', async () => {
    const result = await evaluateNetworkPolicy([conn({ dst_addr: '198.51.100.1' })], { network: true, allow: [] }, { resolve: resolver });
    expect(result.judged[0]).toMatchObject({ verdict: 'allowed' });
    expect(result.violations).toEqual([]);
  });

  it('without network, reports attempts as blocked, and an established one as a leak', async () => {
    const attempts = [conn({ outcome: 'failed' }), conn({ outcome: 'pending' }), conn({ outcome: 'established', dst_addr: '203.0.113.5', dst_port: 22 })];
    const result = await evaluateNetworkPolicy(attempts, { network: false, allow: [] }, { implicit: [QEMU_USER_NET_RESOLVER] });
    expect(result.judged.map((j) => j.verdict)).toEqual(['blocked', 'blocked', 'leaked']);
    expect(describeViolation(result.violations[0]!)).toContain('203.0.113.5:22/tcp although the network was disabled');
  });

  it('judges connects and datagrams, not closes', () => {
    const events = [conn(), conn({ function: 'tcp_close', outcome: undefined, established: true }), conn({ function: 'udp_sendmsg', protocol: 'udp', outcome: undefined })];
    expect(connectionAttempts(events).map((e) => e.function)).toEqual(['tcp_connect', 'udp_sendmsg']);
  });
});
