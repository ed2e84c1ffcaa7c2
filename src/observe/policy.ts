// The network policy of a build: no network (the default), network, or network restricted to a list of
// destinations. Whether the sandbox lets packets out is the runner's business (PodConfig.network); this module
// decides, after the build, whether what the build did was allowed: every observed connection attempt is
// judged, and any attempt outside the list is a violation that fails the build, naming who and where.
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { BuilderError, UsageError } from '../errors.ts';
import type { NetworkConnection } from './events.ts';

/** One `--network-allow HOST:PORT`. */
export interface AllowRule {
  /** As written, for messages. */
  text: string;
  /** An IP address (canonical form) or a host name (resolved on the host when the policy is evaluated). */
  host: string;
  port: number;
}

export interface NetworkPolicy {
  /** Whether the sandbox may reach the network at all. */
  network: boolean;
  /** With network: the only destinations allowed; empty means any. */
  allow: AllowRule[];
}

export const NO_NETWORK: NetworkPolicy = { network: false, allow: [] };

/** A destination allowed regardless of the list because it does not leave the sandbox's own services. */
export interface ImplicitDestination {
  addr: string;
  port: number;
  protocols: ('tcp' | 'udp')[];
  why: string;
}

export type Verdict =
  /** Inside the sandbox (127.0.0.0/8, ::1). */
  | 'loopback'
  /** An implicit destination (e.g. the VM's DNS resolver). */
  | 'implicit'
  /** Network allowed and the destination matches the list (or there is no list). */
  | 'allowed'
  /** Network allowed, destination not in the list: a violation. */
  | 'denied'
  /** Network disabled: the attempt could not get anywhere (reported, not a violation). */
  | 'blocked'
  /** Network disabled, yet the connection was established: the sandbox leaked (a violation). */
  | 'leaked';

export interface JudgedConnection {
  connection: NetworkConnection;
  verdict: Verdict;
  /** The rule that allowed it, or why it was allowed implicitly. */
  reason?: string;
}

export interface PolicyResult {
  judged: JudgedConnection[];
  violations: JudgedConnection[];
  /** Host names in the list that did not resolve (they match nothing). */
  unresolved: string[];
}

export class NetworkPolicyError extends BuilderError {
  override name = 'NetworkPolicyError';
}

const HOSTNAME = /^(?=.{1,253}$)([a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)(\.[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)*\.?$/;

/** IPv4 as is; IPv6 in RFC 5952 form; IPv4-mapped IPv6 as the IPv4 address it carries. */
export function canonicalAddress(addr: string): string {
  if (net.isIPv4(addr)) return addr;
  if (!net.isIPv6(addr)) return addr.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  if (mapped && net.isIPv4(mapped[1]!)) return mapped[1]!;
  const host = new URL(`http://[${addr}]/`).hostname.slice(1, -1);
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (hexMapped) {
    const hi = parseInt(hexMapped[1]!, 16);
    const lo = parseInt(hexMapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return host;
}

export function isLoopback(addr: string): boolean {
  const a = canonicalAddress(addr);
  return a === '::1' || (net.isIPv4(a) && a.startsWith('127.'));
}

/** `HOST:PORT`, `[IPV6]:PORT`; a usage error (naming the flag and the value) for anything else. */
export function parseNetworkAllow(value: string, flag = '--network-allow'): AllowRule {
  const bad = (why: string): never => {
    throw new UsageError(`${flag} ${JSON.stringify(value)}: ${why} (expected HOST:PORT, e.g. example.org:443 or [2001:db8::1]:443)`);
  };
  const text = value.trim();
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2]!;
    if (!net.isIPv6(host)) bad(`"${host}" is not an IPv6 address`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon === -1) return bad('no port');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) bad('an IPv6 address must be in brackets');
    if (host === '') bad('no host');
    if (!net.isIPv4(host) && (!HOSTNAME.test(host) || /^[\d.]+$/.test(host))) bad(`"${host}" is not a host name or IP address`);
  }
  if (!/^\d{1,5}$/.test(portText)) bad(`"${portText}" is not a port number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) bad(`port ${port} is out of range (1-65535)`);
  return { text, host: net.isIP(host) ? canonicalAddress(host) : host.toLowerCase().replace(/\.$/, ''), port };
}

/**
 * The policy from the command line (or a recipe's equivalent): `--network` allows the network;
 * `--network-allow` (repeatable) allows it too, restricted to the listed destinations.
 */
export function networkPolicyFromFlags(flags: { network?: boolean; networkAllow?: string[] }, flag = '--network-allow'): NetworkPolicy {
  const allow = (flags.networkAllow ?? []).map((v) => parseNetworkAllow(v, flag));
  return { network: flags.network === true || allow.length > 0, allow };
}

/** Resolves a host name to its addresses (canonical); [] when it does not resolve. */
export type Resolver = (host: string) => Promise<string[]>;

export const systemResolver: Resolver = async (host) => {
  try {
    return (await lookup(host, { all: true, verbatim: true })).map((a) => canonicalAddress(a.address));
  } catch {
    return [];
  }
};

/** The attempts a policy judges: connects and first datagrams (a close is the end of something judged). */
export function connectionAttempts(events: readonly { type: string }[]): NetworkConnection[] {
  return events.filter((e): e is NetworkConnection => e.type === 'net' && (e as NetworkConnection).function !== 'tcp_close');
}

/** `10.0.2.2:8080`, `[fec0::2]:443`. */
export function formatDestination(addr: string, port: number): string {
  const a = canonicalAddress(addr);
  return net.isIPv6(a) ? `[${a}]:${port}` : `${a}:${port}`;
}

export async function evaluateNetworkPolicy(
  attempts: readonly NetworkConnection[],
  policy: NetworkPolicy,
  options: { implicit?: readonly ImplicitDestination[]; resolve?: Resolver } = {},
): Promise<PolicyResult> {
  const resolve = options.resolve ?? systemResolver;
  const ruleAddresses = new Map<AllowRule, Set<string>>();
  const unresolved: string[] = [];
  for (const rule of policy.allow) {
    if (net.isIP(rule.host)) {
      ruleAddresses.set(rule, new Set([rule.host]));
      continue;
    }
    const addresses = new Set((await resolve(rule.host)).map(canonicalAddress));
    if (addresses.size === 0) unresolved.push(rule.host);
    ruleAddresses.set(rule, addresses);
  }
  const judged: JudgedConnection[] = attempts.map((connection) => {
    const dst = canonicalAddress(connection.dst_addr);
    if (isLoopback(dst)) return { connection, verdict: 'loopback' };
    if (!policy.network) {
      const leaked = connection.function === 'tcp_connect' && connection.outcome === 'established';
      return { connection, verdict: leaked ? 'leaked' : 'blocked' };
    }
    const implicit = options.implicit?.find(
      (d) => canonicalAddress(d.addr) === dst && d.port === connection.dst_port && d.protocols.includes(connection.protocol),
    );
    if (implicit) return { connection, verdict: 'implicit', reason: implicit.why };
    if (policy.allow.length === 0) return { connection, verdict: 'allowed', reason: '--network' };
    const rule = policy.allow.find((r) => r.port === connection.dst_port && ruleAddresses.get(r)!.has(dst));
    return rule ? { connection, verdict: 'allowed', reason: rule.text } : { connection, verdict: 'denied' };
  });
  return { judged, violations: judged.filter((j) => j.verdict === 'denied' || j.verdict === 'leaked'), unresolved };
}

/** One line per violation: who connected where, and why that was not allowed. */
export function describeViolation(j: JudgedConnection): string {
  const c = j.connection;
  const who = `${c.process} (pid ${c.pid}${c.binary && c.binary !== c.process ? `, ${c.binary}` : ''})`;
  const what = c.protocol === 'udp' ? 'sent UDP to' : 'connected to';
  const where = `${formatDestination(c.dst_addr, c.dst_port)}/${c.protocol}`;
  return j.verdict === 'leaked'
    ? `${who} ${what} ${where} although the network was disabled`
    : `${who} ${what} ${where}, which --network-allow does not list`;
}
