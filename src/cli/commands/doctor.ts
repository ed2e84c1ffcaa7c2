// `builder doctor [recipe]`: what a build on this host would trip over, each with its fix.
import type { Command } from 'commander';
import { defaultCaches, formatReport, mirrorsOf, runDoctor } from '../../doctor/doctor.ts';
import { defaultRootCacheDir } from '../../environment/root-provider.ts';
import { BuilderError } from '../../errors.ts';
import { hostArch } from '../../pipeline/arch.ts';
import { withInterrupt } from '../interrupt.ts';
import { collect } from '../options.ts';
import { defaultCacheDir } from '../sandbox-options.ts';
import { defaultArtifactDir } from '../../runners/qemu/seal.ts';
import { compileRecipeFile } from './compile.ts';

interface DoctorFlags {
  mirror: string[];
  rootCacheDir: string;
  cacheDir: string;
  apkCacheDir?: string;
  vmArtifactDir: string;
  json: boolean;
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check this host for what builds need (Node, bwrap and user namespaces, QEMU/KVM, a guest kernel, mmdebstrap, cache space, mirrors), with the fix for each problem')
    .argument('[recipe]', "also reach the mirrors and repositories this recipe's environment names")
    .option('--mirror <url>', 'a mirror or repository URL to reach (repeatable; default: the Debian mirror)', collect, [])
    .option('--root-cache-dir <dir>', 'cache of build roots', defaultRootCacheDir())
    .option('--cache-dir <dir>', 'cache mounted at /var/cache/melange', defaultCacheDir())
    .option('--apk-cache-dir <dir>', 'cache for downloaded packages and indexes (default: <root cache>/downloads)')
    .option('--vm-artifact-dir <dir>', 'qemu runner: sealed store of kernels, initramfs, disk images and the KVM verdict', defaultArtifactDir())
    .option('--json', 'print {ok, checks: [{id, status, detail, fix?}]} on stdout', false)
    .addHelpText('after', '\nExit status 1 when a check fails (warnings do not). See docs/doctor.md.')
    .action(async (recipe: string | undefined, flags: DoctorFlags) => {
      const mirrors = [...flags.mirror];
      if (recipe !== undefined) {
        const plan = await compileRecipeFile(recipe, { arch: hostArch(), pipelineDir: [], buildOption: [] });
        mirrors.push(...mirrorsOf(plan.environment.repositories, process.cwd()));
      }
      const report = await withInterrupt((signal) =>
        runDoctor({ caches: defaultCaches(flags.rootCacheDir, flags.cacheDir, flags.apkCacheDir), mirrors, artifactDir: flags.vmArtifactDir, signal }),
      );
      if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else for (const line of formatReport(report)) process.stdout.write(`${line}\n`);
      if (!report.ok) {
        // The report is the message; the error only sets the exit status.
        throw new BuilderError(`doctor: ${report.checks.filter((c) => c.status === 'fail').map((c) => c.id).join(', ')} failed`);
      }
    });
}
