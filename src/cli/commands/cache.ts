// `builder cache ls|prune`: the content-addressed cache of build roots.
import type { Command } from 'commander';
import { type RootListing, RootCache } from '../../environment/cache.ts';
import { defaultRootCacheDir } from '../../environment/root-provider.ts';
import { UsageError } from '../../errors.ts';
import { formatSize } from '../../text/transfer-progress.ts';
import { printJson } from '../json-output.ts';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };

/** `90s`, `15m`, `12h`, `30d`, `2w` or plain seconds → milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+)([smhdw]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag}: "${text}" is not a duration (e.g. 30d, 12h, 90m, 3600)`);
  return Number(m[1]) * (UNITS[m[2] || 's'] ?? 1) * 1000;
}

export function formatListing(roots: RootListing[]): string[] {
  if (roots.length === 0) return ['(no cached roots)'];
  const rows = roots.map((r) => [r.digest.slice(0, 12), r.kind, formatSize(r.size), r.lastUsed.toISOString().slice(0, 19).replace('T', ' '), r.description]);
  const header = ['DIGEST', 'KIND', 'SIZE', 'LAST USED', 'CONTENTS'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(header), ...rows.map(line)];
}

interface CacheFlags {
  rootCacheDir: string;
}

export function registerCacheCommand(program: Command): void {
  const cache = program.command('cache').description('manage the cache of build roots');
  cache
    .command('ls')
    .description('list cached build roots, most recently used first')
    .option('--root-cache-dir <dir>', 'cache of build roots', defaultRootCacheDir())
    .option('--json', 'print {command, ok, dir, roots: [...], totalBytes} instead of a table (docs/json.md)', false)
    .action(async (flags: CacheFlags & { json: boolean }) => {
      if (flags.json) {
        return printJson('cache ls', async () => {
          const roots = await new RootCache(flags.rootCacheDir).list();
          return { dir: flags.rootCacheDir, roots, totalBytes: roots.reduce((n, r) => n + r.size, 0) };
        });
      }
      const roots = await new RootCache(flags.rootCacheDir).list();
      for (const l of formatListing(roots)) process.stdout.write(`${l}\n`);
      const total = roots.reduce((n, r) => n + r.size, 0);
      process.stdout.write(`${roots.length} root(s), ${formatSize(total)} (files shared by hard links counted in each root)\n`);
    });
  cache
    .command('prune')
    .description('remove cached build roots (all of them, or those unused for a while), and leftovers of interrupted builds')
    .option('--root-cache-dir <dir>', 'cache of build roots', defaultRootCacheDir())
    .option('--older-than <duration>', 'only roots not used for this long (e.g. 30d, 12h)')
    .option('--dry-run', 'list what would be removed', false)
    .action(async (flags: CacheFlags & { olderThan?: string; dryRun: boolean }) => {
      const olderThan = flags.olderThan === undefined ? undefined : new Date(Date.now() - parseDuration(flags.olderThan, '--older-than'));
      const removed = await new RootCache(flags.rootCacheDir).prune({ olderThan, dryRun: flags.dryRun });
      const verb = flags.dryRun ? 'would remove' : 'removed';
      for (const r of removed) process.stdout.write(`${verb} ${r.digest.slice(0, 12)} ${r.kind} ${formatSize(r.size)} ${r.description}\n`);
      process.stdout.write(`${verb} ${removed.length} root(s), ${formatSize(removed.reduce((n, r) => n + r.size, 0))}\n`);
    });
}
