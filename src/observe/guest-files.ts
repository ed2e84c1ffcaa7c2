// Where the observability hook lives in the guest, and the files the base initramfs gets for it: the hook
// program, its converter and the sentinel that tells the host the hook is there (and where its files are).
// The sources live beside the other guest programs in src/initramfs/guest/.

/** Where the sentinel is in the guest; its presence is what says "this initramfs records events". */
export const SENTINEL_PATH = '/etc/builder/observability';
export const HOOK_PATH = '/etc/builder/hooks.d/observability';
export const CONVERTER_PATH = '/usr/libexec/builder/observe.awk';
export const EVENTS_PATH = '/var/log/observability/events.json';
export const STATUS_PATH = '/var/log/observability/status.json';

/** What the sentinel says; a custom initramfs may install a hook of its own that honours the same contract. */
export interface Sentinel {
  version: 1;
  /** Run with `stop` over the control channel; prints the status JSON. */
  hook: string;
  /** NDJSON events (see events.ts). */
  events: string;
  status: string;
}

export const DEFAULT_SENTINEL: Sentinel = { version: 1, hook: HOOK_PATH, events: EVENTS_PATH, status: STATUS_PATH };

/** Sources (in src/initramfs/guest/) and their places in the base initramfs. */
export const OBSERVABILITY_GUEST_FILES: { source: string; path: string; mode: number }[] = [
  { source: 'observe', path: HOOK_PATH.slice(1), mode: 0o755 },
  { source: 'observe.awk', path: CONVERTER_PATH.slice(1), mode: 0o644 },
  { source: 'observability.json', path: SENTINEL_PATH.slice(1), mode: 0o644 },
];

export function guestSourceUrl(name: string): URL {
  return new URL(`../initramfs/guest/${name}`, import.meta.url);
}
