// `builder rebuild PKG.apk...`: melange's `rebuild`. Each package carries what it was built from: builder
// embeds its compiled plan as `.melange.yaml` (melange embeds its parsed recipe there; both are accepted), its
// build date in .PKGINFO and its namespace in the SBOM. The plan is built again through the normal build path
// into --out-dir, and the result must be the same file byte for byte (--no-diff skips that check).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parse } from 'yaml';
import { type ApkHead, readApk, readApkData, readApkHead } from '../../apk/reader.ts';
import { build } from '../../build/build.ts';
import { chooseRenderer } from '../../build/progress.ts';
import { parseRecipe } from '../../config/load.ts';
import { BuilderError, errorMessage } from '../../errors.ts';
import { NotReproducibleError, compareApks } from '../../lint/reproducible.ts';
import { compileRecipe } from '../../pipeline/compile.ts';
import type { BuildPlan } from '../../pipeline/plan.ts';
import { sbomPath } from '../../sbom/spdx.ts';
import { withInterrupt } from '../interrupt.ts';
import { addSandboxOptions, type SandboxFlags, sandboxSetup } from '../sandbox-options.ts';

/** What a package says about how it was built. */
export interface EmbeddedBuild {
  plan: BuildPlan;
  sourceDateEpoch: number;
  namespace: string;
  /** `pkgname-pkgver.apk`: the file name the rebuild writes. */
  fileName: string;
  signed: boolean;
}

export class NoEmbeddedRecipeError extends BuilderError {
  override name = 'NoEmbeddedRecipeError';
}

/** Reads the plan, build date and namespace a package embeds; `sourceDir` stands for the recipe's folder. */
export async function readEmbeddedBuild(apk: string, sourceDir: string): Promise<EmbeddedBuild> {
  const head = await readApkHead(apk);
  const embedded = head.controlFiles.find((f) => f.name === '.melange.yaml');
  if (!embedded) {
    throw new NoEmbeddedRecipeError(`${apk}: the package embeds no recipe (.melange.yaml in its control stream), so it cannot be rebuilt`);
  }
  const where = `${apk}: .melange.yaml`;
  const text = embedded.content.toString('utf8');
  let data: unknown;
  try {
    data = parse(text);
  } catch (err) {
    throw new BuilderError(`${where}: not valid YAML: ${errorMessage(err)}`);
  }
  const arch = head.info.arch;
  let plan: BuildPlan;
  if (isPlan(data)) {
    plan = data;
  } else if (data && typeof data === 'object' && 'package' in data) {
    // A melange-built package: its .melange.yaml is the recipe itself.
    plan = compileRecipe(parseRecipe(text, where), { arch });
  } else {
    throw new NoEmbeddedRecipeError(`${where}: neither a builder build plan nor a melange recipe`);
  }
  // Local paths in the plan are relative to the recipe's folder, which the rebuild takes from --source-dir.
  plan = { ...plan, recipeFile: join(sourceDir, basename(plan.recipeFile || 'melange.yaml')) };
  const main = plan.packages[0]!;
  return {
    plan,
    sourceDateEpoch: head.info.builddate ?? 0,
    namespace: (await sbomNamespace(apk, head, main)) ?? 'unknown',
    fileName: `${head.info.pkgname}-${head.info.pkgver}.apk`,
    signed: head.signatures.length > 0,
  };
}

function isPlan(data: unknown): data is BuildPlan {
  if (!data || typeof data !== 'object') return false;
  const d = data as Record<string, unknown>;
  return typeof d.recipeFile === 'string' && typeof d.arch === 'string' && Array.isArray(d.packages) && d.packages.length > 0;
}

/** The namespace the SBOM's supplier names (`Organization: <namespace>`), when the package has an SBOM. */
async function sbomNamespace(apk: string, head: ApkHead, pkg: { version: string; epoch: number }): Promise<string | undefined> {
  const wanted = sbomPath(head.info.pkgname, pkg.version, pkg.epoch);
  let namespace: string | undefined;
  await readApkData(apk, head, {
    onEntry: async (entry, content) => {
      if (entry.name !== wanted) return;
      const chunks: Buffer[] = [];
      for await (const c of content) chunks.push(c);
      try {
        const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { packages?: { supplier?: string }[] };
        namespace = doc.packages?.[0]?.supplier?.replace(/^Organization: /, '');
      } catch {
        // An unreadable SBOM only costs the namespace; the comparison will show the difference.
      }
    },
  });
  return namespace;
}

interface RebuildFlags extends SandboxFlags {
  outDir: string;
  signingKey?: string;
  diff: boolean;
}

export function registerRebuildCommand(program: Command): void {
  addSandboxOptions(
    program
      .command('rebuild')
      .description('rebuild packages from the build plan they embed and check the result is identical byte for byte')
      .argument('<apk...>', 'packages built by builder (or melange)'),
  )
    .option('--out-dir <dir>', 'repository the rebuilt packages go to (under <dir>/<arch>/)', './rebuilt-packages/')
    .option('--signing-key <file>', 'RSA private key to sign the rebuilt packages with (the original one, for identical signatures)')
    .option('--no-diff', 'do not compare the rebuilt packages with the originals')
    .addHelpText(
      'after',
      `
The architecture, build date (.PKGINFO builddate), namespace (SBOM supplier) and the compiled recipe
(.melange.yaml: steps, sources, environment) come from the package; --arch, --pipeline-dir, --build-option
and --build-date are not used. Packages of one origin are rebuilt once. The build root is made as for
\`builder build\`, so give the same --base/--repository-append flags as the original build. Files the
recipe's folder provided are taken from --source-dir (default: an empty directory).

Without --signing-key, a signed original is compared without its signature.`,
    )
    .action(async (apks: string[], flags: RebuildFlags) => {
      const progress = chooseRenderer();
      await withInterrupt(async (signal) => {
        const emptyDir = flags.sourceDir ? undefined : await mkdtemp(join(tmpdir(), 'builder-rebuild-src-'));
        const sourceDir = resolve(flags.sourceDir ?? emptyDir!);
        try {
          const origins = new Map<string, string>();
          const failures: NotReproducibleError[] = [];
          for (const apk of apks) {
            const embedded = await readEmbeddedBuild(apk, sourceDir);
            const { plan } = embedded;
            const origin = plan.packages[0]!.name;
            let archDir = origins.get(origin);
            if (archDir) {
              progress.note(`${apk}: ${origin} was rebuilt already`);
            } else {
              progress.note(`rebuilding ${apk}`);
              const result = await build({
                ...(await sandboxSetup(flags, signal)),
                plan,
                recipeFile: plan.recipeFile,
                arch: plan.arch,
                runner: flags.runner,
                outDir: flags.outDir,
                signingKey: flags.signingKey,
                sourceDir,
                cacheDir: flags.cacheDir,
                workspaceDir: flags.workspaceDir,
                sourceDateEpoch: embedded.sourceDateEpoch,
                debug: flags.debug,
                generateIndex: true,
                keepWorkspace: flags.keepWorkspace,
                namespace: embedded.namespace,
                progress,
                signal,
              });
              archDir = resolve(flags.outDir, result.plan.arch);
              origins.set(origin, archDir);
            }
            if (!flags.diff) continue;
            const rebuilt = join(archDir, embedded.fileName);
            const verdict = await compareRebuilt(apk, rebuilt, embedded.signed && !flags.signingKey);
            if (verdict.error) failures.push(verdict.error);
            else progress.note(`${apk}: identical to ${rebuilt}${verdict.note}`);
          }
          if (failures.length > 0) {
            throw new BuilderError(`rebuild differs: ${failures.map((f) => f.message.replace(/^not reproducible: /, '')).join('; ')}`, {
              details: failures.flatMap((f) => f.details),
            });
          }
        } finally {
          if (emptyDir) await rm(emptyDir, { recursive: true, force: true });
        }
      });
    });
}

async function compareRebuilt(original: string, rebuilt: string, unsignedRebuild: boolean): Promise<{ error?: NotReproducibleError; note: string }> {
  const comparison = await compareApks(original, rebuilt).catch((err: unknown) => {
    throw new BuilderError(`${original}: the rebuild did not produce ${rebuilt}: ${errorMessage(err)}`);
  });
  if (comparison.identical) return { note: ' (byte for byte)' };
  if (unsignedRebuild) {
    const [a, b] = await Promise.all([readApk(original), readApk(rebuilt)]);
    if (a.controlCompressed.equals(b.controlCompressed) && a.dataHash === b.dataHash) {
      return { note: ' apart from the signature (no --signing-key given)' };
    }
  }
  const name = basename(original);
  return { error: new NotReproducibleError([{ packageName: name, first: original, second: rebuilt, comparison }]), note: '' };
}
