// The packaging stage: package trees in the workspace → signed .apk files in the out dir. Every package
// gets its SBOM and scanned dependencies, is linted, and only when all of them pass are they renamed into
// place together, so a failure part way leaves nothing in the out dir.
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { stringify } from 'yaml';
import type { IndexEntry } from '../apk/index.ts';
import type { SigningKey } from '../apk/keys.ts';
import { scanPackages } from '../apk/sca/scan.ts';
import { writeApk } from '../apk/writer.ts';
import { failOnLintErrors, formatLintReport, lintPackage, type LintReport } from '../lint/lint.ts';
import { writeLintResults } from '../lint/results.ts';
import type { LintSettings } from '../lint/settings.ts';
import type { BuildPlan, PackagePlan } from '../pipeline/plan.ts';
import type { PreparedSource } from '../sources/prepare.ts';
import { type SbomSource, writeSbom } from '../sbom/spdx.ts';

export interface BuiltPackage {
  name: string;
  path: string;
  entry: IndexEntry;
}

export interface PackageStageOptions {
  plan: BuildPlan;
  /** Host path of /home/build/melange-out. */
  treesDir: string;
  archDir: string;
  signingKey?: SigningKey;
  sourceDateEpoch: number;
  /** Distribution namespace for SBOM purls. */
  namespace: string;
  /** `--strip-origin-name`: no `origin` in the metadata. */
  stripOriginName?: boolean;
  /** `--git-commit`: the recipe's commit, over the detected one. */
  gitCommit?: string;
  /** `--git-repo-url`, `--license`: the recipe file's repository and own license, for the SBOM. */
  recipe?: { repositoryUrl?: string; license?: string };
  /** Where the sources came from (as fetched: real checksums and commits), recorded in each SBOM. */
  sources: PreparedSource[];
  lint: { settingsFor: (pkg: PackagePlan) => LintSettings; persist: boolean };
  log: (line: string) => void;
}

export function packageFileName(pkg: PackagePlan): string {
  return `${pkg.name}-${pkg.version}-r${pkg.epoch}.apk`;
}

export async function writePackages(o: PackageStageOptions): Promise<BuiltPackage[]> {
  const { plan } = o;
  for (const pkg of plan.packages) {
    const sbom = await writeSbom(join(o.treesDir, pkg.name), {
      name: pkg.name,
      version: pkg.version,
      epoch: pkg.epoch,
      arch: plan.arch,
      namespace: o.namespace,
      licenses: pkg.licenses,
      sources: o.sources.map(sbomSource),
      sourceDateEpoch: o.sourceDateEpoch,
      description: pkg.description,
      url: pkg.url,
      // The plan's recipe path is the file's name wherever it is checked out, so a rebuild names it the same.
      configFile: { path: basename(plan.recipeFile), commit: recipeCommit(o, pkg), ...o.recipe },
    });
    for (const w of sbom.warnings) o.log(`${pkg.name}: SBOM: ${w}`);
  }
  const scanned = await scanPackages({
    packages: plan.packages.map((pkg) => ({
      name: pkg.name,
      version: `${pkg.version}-r${pkg.epoch}`,
      dir: join(o.treesDir, pkg.name),
      options: pkg.options,
      declared: { runtime: pkg.dependencies.runtime, provides: pkg.dependencies.provides },
    })),
  });
  const melangeYaml = compiledRecipe(plan);

  const staged: { temp: string; final: string; built: BuiltPackage; report: LintReport }[] = [];
  let placed = false;
  try {
    for (const pkg of plan.packages) {
      const file = packageFileName(pkg);
      const final = join(o.archDir, file);
      const temp = join(o.archDir, `.${file}.${process.pid}.tmp`);
      const deps = scanned.get(pkg.name);
      for (const w of deps?.warnings ?? []) o.log(`${pkg.name}: ${w}`);
      const result = await writeApk({
        sourceDir: join(o.treesDir, pkg.name),
        outputPath: temp,
        signingKey: o.signingKey,
        sourceDateEpoch: o.sourceDateEpoch,
        info: {
          pkgname: pkg.name,
          pkgver: `${pkg.version}-r${pkg.epoch}`,
          arch: plan.arch,
          origin: o.stripOriginName ? undefined : pkg.origin,
          pkgdesc: pkg.description,
          url: pkg.url,
          commit: recipeCommit(o, pkg),
          builddate: o.sourceDateEpoch > 0 ? o.sourceDateEpoch : undefined,
          license: pkg.licenses,
          depend: deps?.depend ?? pkg.dependencies.runtime,
          provides: deps?.provides ?? pkg.dependencies.provides,
          replaces: pkg.dependencies.replaces,
          installIf: [],
          providerPriority: pkg.dependencies.providerPriority,
          replacesPriority: pkg.dependencies.replacesPriority,
          triggers: pkg.triggerPaths,
        },
        controlFiles: [
          ...Object.entries(pkg.scriptlets).map(([name, content]) => ({ name: `.${name}`, content, mode: 0o755 })),
          { name: '.melange.yaml', content: melangeYaml, mode: 0o644 },
        ],
      });
      const entry: IndexEntry = { ...result.info, checksum: result.checksum, fileSize: result.fileSize };
      const report = await lintPackage(temp, { settings: o.lint.settingsFor(pkg), reportAs: final });
      staged.push({ temp, final, built: { name: pkg.name, path: final, entry }, report });
      o.log(`${file} (${result.fileSize} bytes)`);
      for (const line of formatLintReport(report)) o.log(line);
    }
    failOnLintErrors(staged.map((s) => s.report));
    for (const s of staged) await rename(s.temp, s.final);
    placed = true;
    if (o.lint.persist) for (const s of staged) await writeLintResults(o.archDir, s.report);
  } finally {
    if (!placed) await Promise.all(staged.map((s) => rm(s.temp, { force: true })));
  }
  return staged.map((s) => s.built);
}

function recipeCommit(o: PackageStageOptions, pkg: PackagePlan): string | undefined {
  return o.gitCommit || pkg.commit || undefined;
}

function sbomSource({ source, sha256, commit }: PreparedSource): SbomSource {
  if (source.kind === 'git') return { repository: source.repository, commit: commit ?? source.expectedCommit ?? '' };
  const digest = sha256 ?? source.sha256;
  return { uri: source.uri, ...(digest ? { sha256: digest } : {}), ...(source.sha512 ? { sha512: source.sha512 } : {}) };
}

/**
 * The compiled recipe shipped as `.melange.yaml`: the plan without host-specific paths, so it is the same
 * wherever the recipe is checked out.
 */
function compiledRecipe(plan: BuildPlan): string {
  const recipeDir = dirname(plan.recipeFile);
  const portable = {
    ...plan,
    recipeFile: basename(plan.recipeFile),
    packages: plan.packages.map((p) => ({
      ...p,
      steps: p.steps.map((s) => ({ ...s, source: s.source.startsWith('/') ? relative(recipeDir, s.source) : s.source })),
    })),
  };
  return stringify(portable, { sortMapEntries: true, lineWidth: 0 });
}
