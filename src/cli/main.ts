// The `builder` command line. Errors are printed once, without a stack trace: exit 1 for failures,
// 2 for usage errors, 130 after Ctrl-C.
import { Command, CommanderError } from 'commander';
import { BuilderError, ConfigError, UsageError } from '../errors.ts';
import { registerApkCommands } from './commands/apk.ts';
import { registerBuildCommand } from './commands/build.ts';
import { registerTestCommand } from './commands/test.ts';
import { registerInitramfsCommand } from './commands/initramfs.ts';
import { registerCacheCommand } from './commands/cache.ts';
import { registerCompileCommand } from './commands/compile.ts';
import { registerPipelinesCommand } from './commands/pipelines.ts';
import { registerQueryCommand } from './commands/query.ts';
import { registerLintCommand } from './commands/lint.ts';
import { registerScanCommand } from './commands/scan.ts';
import { VERSION } from './version.ts';

const program = new Command('builder')
  .description('Build signed APK packages from melange-compatible YAML recipes in a Bubblewrap or QEMU sandbox.')
  .version(VERSION, '-V, --version', 'print the version')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

registerBuildCommand(program);
registerTestCommand(program);
registerCacheCommand(program);
registerCompileCommand(program);
registerQueryCommand(program);
registerPipelinesCommand(program);
registerApkCommands(program);
registerInitramfsCommand(program);
registerScanCommand(program);
registerLintCommand(program);
program
  .command('version')
  .description('print the version of builder and of the Node.js running it')
  .action(() => console.log(`builder ${VERSION} (node ${process.version})`));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode = report(err);
}

function report(err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander has already printed its message (or the help/version text).
    return err.exitCode === 0 ? 0 : 2;
  }
  if (err instanceof UsageError) {
    process.stderr.write(`builder: ${err.message}\n`);
    return 2;
  }
  if (err instanceof BuilderError) {
    const prefix = err instanceof ConfigError ? '' : 'error: ';
    process.stderr.write(`${prefix}${err.message}\n`);
    for (const line of err.details) process.stderr.write(`  ${line}\n`);
    return err.name === 'Interrupted' ? 130 : 1;
  }
  // A bug rather than bad input: keep the stack, it is what a maintainer needs.
  process.stderr.write(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}
