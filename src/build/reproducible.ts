// `builder build --verify-reproducible`: the recipe is built twice, each time in a fresh workspace and a
// private out dir; only when every package of both builds is byte-identical are the first build's packages
// moved into the real out dir and indexed.
import { copyFile, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { updateApkIndex } from '../apk/index.ts';
import { loadSigningKey } from '../apk/keys.ts';
import { BuilderError } from '../errors.ts';
import { verifyReproducible } from '../lint/reproducible.ts';
import { build, type BuildOptions, type BuildResult } from './build.ts';
import { provenancePath } from './provenance.ts';

export async function buildReproducibly(options: BuildOptions): Promise<BuildResult> {
  const outDir = resolve(options.outDir);
  const scratch = await mkdir(outDir, { recursive: true })
    .then(() => mkdtemp(join(outDir, '.reproducible-')))
    .catch((err: unknown) => {
      throw new BuilderError(`--out-dir: ${outDir} is not writable (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    });
  try {
    const once = { ...options, generateIndex: false };
    options.progress.note('reproducibility check: first build');
    const first = await build({ ...once, outDir: join(scratch, 'first') });
    options.progress.note('reproducibility check: second build');
    const second = await build({ ...once, outDir: join(scratch, 'second') });
    await verifyReproducible(
      first.packages.map((p, i) => ({ packageName: p.name, first: p.path, second: second.packages[i]?.path ?? '(missing)' })),
    );
    options.progress.note(`reproducible: ${first.packages.length} package(s) identical in both builds`);

    const archDir = resolve(options.outDir, first.plan.arch);
    await mkdir(archDir, { recursive: true });
    const packages = [];
    for (const p of first.packages) {
      const final = join(archDir, basename(p.path));
      await moveInto(p.path, final);
      // The first build's attestation goes with its package.
      if (options.generateProvenance) await moveInto(provenancePath(p.path), provenancePath(final));
      packages.push({ ...p, path: final });
    }
    // The first build's observability report goes with its packages: the scratch dir is removed below.
    let observability = first.observability;
    const report = observability?.reportPath;
    if (observability && report) {
      const final = join(archDir, basename(report));
      await moveInto(report, final);
      observability = { ...observability, reportPath: final, summary: observability.summary.map((l) => l.replaceAll(report, final)) };
    }
    let indexPath: string | undefined;
    if (options.generateIndex && packages.length > 0) {
      indexPath = join(archDir, 'APKINDEX.tar.gz');
      const signingKey = options.signingKey ? await loadSigningKey(options.signingKey) : undefined;
      await updateApkIndex({ path: indexPath, add: packages.map((p) => p.entry), signingKey });
    }
    return { ...first, packages, indexPath, ...(observability ? { observability } : {}) };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The scratch dir is inside the out dir, so this is a rename on one filesystem; copy if it is not. */
async function moveInto(from: string, to: string): Promise<void> {
  await rename(from, to).catch(async () => {
    await copyFile(from, `${to}.tmp`);
    await rename(`${to}.tmp`, to);
  });
}
