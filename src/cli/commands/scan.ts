// `builder scan pkg.apk...`: what dependency scanning finds in existing packages.
import type { Command } from 'commander';
import { type ApkScanReport, scanApks } from '../../apk/sca/scan-apk.ts';
import { printJson } from '../json-output.ts';

interface ScanFlags {
  json: boolean;
}

export function registerScanCommand(program: Command): void {
  program
    .command('scan')
    .description('show the runtime dependencies and provides that scanning finds in packages')
    .argument('<package...>', '.apk files; packages with the same origin are scanned together as siblings')
    .option('--json', 'print {command, ok, packages: [...]} instead of text (docs/json.md)', false)
    .action(async (files: string[], flags: ScanFlags) => {
      if (flags.json) return printJson('scan', async () => ({ packages: await scanApks(files) }));
      const reports = await scanApks(files);
      process.stdout.write(reports.map(renderReport).join('\n'));
    });
}

export function renderReport(r: ApkScanReport): string {
  const lines = [`${r.file}: ${r.name} ${r.version}`];
  const section = (title: string, items: string[], missing: string[]): void => {
    lines.push(`  ${title}:${items.length === 0 ? ' (none)' : ''}`);
    const absent = new Set(missing);
    for (const item of items) lines.push(`    ${item}${absent.has(item) ? '   (not in .PKGINFO)' : ''}`);
  };
  section('provides', r.scanned.provides, r.missing.provides);
  section('depends', r.scanned.depend, r.missing.depend);
  for (const w of r.scanned.warnings) lines.push(`  warning: ${w}`);
  return `${lines.join('\n')}\n`;
}
