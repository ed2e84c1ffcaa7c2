// The `builder` command line. Errors are printed once, without a stack trace: exit 1 for failures,
// 2 for usage errors, 130 after Ctrl-C.
import { Command, CommanderError } from 'commander';
import { BuilderError, ConfigError, UsageError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { dropOutputOnceClosed } from './closed-output.ts';
import { normalizeBooleanFlags } from './options.ts';

for (const stream of [process.stdout, process.stderr]) dropOutputOnceClosed(stream);

const program = new Command('builder')
  .description('Build signed APK packages from melange-compatible YAML recipes in a Bubblewrap or QEMU sandbox.')
  .version(VERSION, '-V, --version', 'print the version')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

// Each command's module (and what it pulls in: ssh2, listr2, the APK writer...) is loaded only when that
// command runs, so `builder version` or `builder query` do not pay for `builder build`.
type Register = (program: Command) => void;
const COMMANDS: Record<string, () => Promise<Register>> = {
  build: async () => (await import('./commands/build.ts')).registerBuildCommand,
  test: async () => (await import('./commands/test.ts')).registerTestCommand,
  cache: async () => (await import('./commands/cache.ts')).registerCacheCommand,
  compile: async () => (await import('./commands/compile.ts')).registerCompileCommand,
  query: async () => (await import('./commands/query.ts')).registerQueryCommand,
  pipelines: async () => (await import('./commands/pipelines.ts')).registerPipelinesCommand,
  apk: async () => (await import('./commands/apk.ts')).registerApkCommands,
  'build-initramfs': async () => (await import('./commands/initramfs.ts')).registerInitramfsCommand,
  scan: async () => (await import('./commands/scan.ts')).registerScanCommand,
  lint: async () => (await import('./commands/lint.ts')).registerLintCommand,
  bump: async () => (await import('./commands/bump.ts')).registerBumpCommand,
  rebuild: async () => (await import('./commands/rebuild.ts')).registerRebuildCommand,
  'update-cache': async () => (await import('./commands/update-cache.ts')).registerUpdateCacheCommand,
  source: async () => (await import('./commands/source.ts')).registerSourceCommand,
  'sign-index': async () => (await import('./commands/sign-index.ts')).registerSignIndexCommand,
  completion: async () => (await import('./commands/completion.ts')).registerCompletionCommand,
  'license-check': async () => (await import('./commands/license-check.ts')).registerLicenseCheckCommand,
  'package-version': async () => (await import('./commands/package-version.ts')).registerPackageVersionCommand,
  plan: async () => (await import('./commands/plan.ts')).registerPlanCommand,
};
/** Commands registered by another command's module. */
const ALIASES: Record<string, string> = { keygen: 'apk', sign: 'apk', index: 'apk', verify: 'apk' };

try {
  const asked = process.argv[2] ?? '';
  // `completion` describes every command, so it needs them all, like help does.
  const only = asked === 'completion' ? undefined : COMMANDS[ALIASES[asked] ?? asked];
  const needsNone = ['version', '-V', '--version'].includes(asked);
  // Help, unknown commands and their suggestions need every command; otherwise just the one asked for.
  if (!needsNone) for (const load of only ? [only] : Object.values(COMMANDS)) (await load())(program);
  program
    .command('version')
    .description('print the version of builder and of the Node.js running it')
    .action(() => console.log(`builder ${VERSION} (node ${process.version})`));
  // melange's `--flag=false` for booleans: rewritten to commander's `--no-flag` before parsing.
  const sub = program.commands.find((c) => c.name() === asked);
  const argv = sub ? [...process.argv.slice(0, 3), ...normalizeBooleanFlags(sub, process.argv.slice(3))] : process.argv;
  await program.parseAsync(argv);
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
