// Progress of a download made of several items (image layers, packages): items and bytes done out of the
// totals, as one line. Lines go to the caller's log — on a terminal the build's task shows the latest one in
// place, in CI each is a timestamped line — so they are rate-limited: one when an item completes, and at most
// one per interval while bytes flow.

export interface TransferCounts {
  itemsDone: number;
  itemsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export class TransferProgress {
  readonly #label: string;
  readonly #log: (line: string) => void;
  readonly #intervalMs: number;
  readonly #counts: TransferCounts;
  #lastLine = 0;

  constructor(label: string, totals: { items: number; bytes: number }, log: (line: string) => void, intervalMs = 1000) {
    this.#label = label;
    this.#log = log;
    this.#intervalMs = intervalMs;
    this.#counts = { itemsDone: 0, itemsTotal: totals.items, bytesDone: 0, bytesTotal: totals.bytes };
  }

  get counts(): TransferCounts {
    return { ...this.#counts };
  }

  /** Bytes received for the current item. */
  bytes(n: number): void {
    this.#counts.bytesDone += n;
    const now = performance.now();
    if (now - this.#lastLine >= this.#intervalMs) this.#emit(now);
  }

  /** One item finished; `skippedBytes` are those of an item that needed no transfer (a cache hit). */
  itemDone(skippedBytes = 0): void {
    this.#counts.itemsDone += 1;
    this.#counts.bytesDone += skippedBytes;
    this.#emit(performance.now());
  }

  #emit(now: number): void {
    this.#lastLine = now;
    this.#log(formatTransfer(this.#label, this.#counts));
  }
}

export function formatTransfer(label: string, c: TransferCounts): string {
  const pct = c.bytesTotal > 0 ? ` (${Math.floor((c.bytesDone / c.bytesTotal) * 100)}%)` : '';
  return `${label}: ${c.itemsDone}/${c.itemsTotal} layers, ${formatSize(c.bytesDone)} of ${formatSize(c.bytesTotal)}${pct}`;
}

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
