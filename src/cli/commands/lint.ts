// `builder lint pkg.apk...`: run the package linters on built packages.
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { failOnLintErrors, formatLintReport, lintPackage, type LintReport } from '../../lint/lint.ts';
import { writeLintResults } from '../../lint/results.ts';
import { collectLinterList, lintSettings } from '../../lint/settings.ts';
import { LINTERS } from '../../lint/linters.ts';
import { printJson } from '../json-output.ts';

interface LintFlags {
  lintRequire: string[];
  lintWarn: string[];
  persistLintResults: boolean;
  json: boolean;
}

export function registerLintCommand(program: Command): void {
  program
    .command('lint')
    .description('check built packages for common packaging mistakes')
    .argument('<package...>', '.apk files')
    .option('--lint-require <names>', 'linters whose findings are errors (comma-separated, repeatable)', collectLinterList, [])
    .option('--lint-warn <names>', 'linters whose findings are only warnings (comma-separated, repeatable)', collectLinterList, [])
    .option('--persist-lint-results', 'write lint-<name>-<version>.json next to each package', false)
    .option('--json', 'print {command, ok, packages: [reports]} instead of text (docs/json.md)', false)
    .addHelpText(
      'after',
      `\nLinters (default severity):\n${LINTERS.map((l) => `  ${l.name.padEnd(14)} ${l.defaultSeverity.padEnd(8)} ${l.description}`).join('\n')}\n`,
    )
    .action(async (files: string[], flags: LintFlags) => {
      const reports: LintReport[] = [];
      const lintAll = async (): Promise<void> => {
        const settings = lintSettings({ require: flags.lintRequire, warn: flags.lintWarn });
        for (const file of files) {
          const report = await lintPackage(file, { settings });
          reports.push(report);
          if (flags.persistLintResults) await writeLintResults(dirname(file), report);
          if (!flags.json) process.stdout.write(`${formatLintReport(report).join('\n')}\n`);
        }
      };
      if (flags.json) {
        // Findings at error severity make ok false; the exit status is still set by failOnLintErrors.
        await printJson('lint', async () => {
          await lintAll();
          return { ok: reports.every((r) => r.errors === 0), packages: reports };
        });
      } else {
        await lintAll();
      }
      failOnLintErrors(reports);
    });
}
