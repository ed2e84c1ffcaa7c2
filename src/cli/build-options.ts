// The flags of melange's `build` (and `compile`, which takes the same) beyond the sandbox's: outputs, package
// metadata, lint severities, and melange flags builder refuses with a clear message.
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { collectLinterList } from '../lint/settings.ts';
import { collect } from './options.ts';
import type { SandboxFlags } from './sandbox-options.ts';

export interface BuildFlags extends SandboxFlags {
  outDir: string;
  signingKey?: string;
  generateIndex: boolean;
  verifyReproducible: boolean;
  lintRequire: string[];
  lintWarn: string[];
  failOnLintWarning: boolean;
  persistLintResults: boolean;
  network: boolean;
  networkAllow: string[];
  emptyWorkspace: boolean;
  stripOriginName: boolean;
  createBuildLog: boolean;
  dependencyLog?: string;
  gitCommit?: string;
  gitRepoUrl?: string;
  license: string;
  generateProvenance: boolean;
  overlayBinsh?: string;
  guestDir?: string;
  breakpointLabel?: string;
  continueLabel?: string;
  trace?: string;
  logPolicy: string[];
}

/** melange flags builder has no counterpart for: accepted, and refused with a clear message when used. */
const NOT_SUPPORTED: [keyof BuildFlags, string][] = [
  ['overlayBinsh', '--overlay-binsh'],
  ['guestDir', '--guest-dir'],
  ['breakpointLabel', '--breakpoint-label'],
  ['continueLabel', '--continue-label'],
  ['trace', '--trace'],
];

export function addBuildOptions(cmd: Command): Command {
  return cmd
    .option('--out-dir <dir>', 'repository the packages and APKINDEX.tar.gz go to (under <dir>/<arch>/)', './packages')
    .option('--signing-key <file>', 'RSA private key to sign packages and the index with (see `builder keygen`)')
    .option('--generate-index', 'update <out-dir>/<arch>/APKINDEX.tar.gz (default; --generate-index=false to skip)', true)
    .option('--no-generate-index', 'do not update the index')
    .option('--empty-workspace', 'start from an empty workspace instead of a copy of the source dir', false)
    .option('--strip-origin-name', 'leave origin out of the package metadata (for bootstrap packages)', false)
    .option('--create-build-log', 'append a line arch|origin|name|version per built package to ./packages.log', false)
    .option('--dependency-log <file>', "write the build environment's repositories, keys and packages as JSON to this file")
    .option('--git-commit <sha>', "commit of the recipe's git repository, recorded in the packages (default: detected)")
    .option('--git-repo-url <url>', "URL of the recipe's git repository, recorded in the SBOM (the recipe's download location) and the dependency log")
    .option('--license <spdx>', "license of the recipe file itself, recorded in the SBOM (the recipe's declared license) and the dependency log", 'NOASSERTION')
    .option('--generate-provenance', 'write SLSA provenance (an in-toto statement) for each package to <name>-<version>-r<epoch>.attest.tar.gz next to it', false)
    .option('--verify-reproducible', 'build twice in fresh workspaces and fail, naming the first differing files, unless the packages are identical', false)
    .option('--lint-require <linters>', 'make these linters errors (comma-separated, repeatable)', collectLinterList, [])
    .option('--lint-warn <linters>', 'make these linters warnings (comma-separated, repeatable)', collectLinterList, [])
    .option('--fail-on-lint-warning', 'make every linter an error (melange: deprecated, use --lint-require)', false)
    .option('--persist-lint-results', 'write lint results as JSON next to the packages', false)
    .option('--log-policy <policies>', 'where logs go: builtin:stderr only (comma-separated)', collect, [])
    .option('--overlay-binsh <file>', 'melange: /bin/sh overlay (not supported: refused)')
    .option('--guest-dir <dir>', 'melange: guest directory (not supported: refused)')
    .option('--breakpoint-label <label>', 'melange: stop at a label (not supported: refused)')
    .option('--continue-label <label>', 'melange: continue at a label (not supported: refused)')
    .option('--trace <file>', 'melange: trace output (not supported: refused)')
    .option('--network', 'give the steps network access (none by default)', false)
    .option('--network-allow <host:port>', 'allow the network, but fail the build if it connected anywhere else (repeatable; qemu runner)', collect, []);
}

export function refuseUnsupported(flags: BuildFlags): void {
  for (const [key, flag] of NOT_SUPPORTED) {
    if (flags[key] !== undefined) throw new UsageError(`${flag}: melange's flag is accepted but builder does not support it`);
  }
  const policies = flags.logPolicy.flatMap((p) => p.split(','));
  const other = policies.find((p) => p !== 'builtin:stderr');
  if (other) throw new UsageError(`--log-policy: "${other}" is not supported (only builtin:stderr)`);
}

