// `builder source get recipe.yaml -o DIR`: melange's `source`. The recipe's upstream source as a directory
// to work in: the main pipeline's first git-checkout (fetched through the build's own host-side checkout and
// cache), copied with its .git to <DIR>/<package name>, with the patches of the first `patch` step after it
// applied. Where melange knows only git-checkout, a recipe whose sources are downloads gets the downloaded
// files (not unpacked) in that directory instead.
import { copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { execa } from 'execa';
import { tempPathFor } from '../../apk/atomic.ts';
import { loadRecipe } from '../../config/load.ts';
import { BuilderError, errorMessage } from '../../errors.ts';
import { hostArch } from '../../pipeline/arch.ts';
import { compileRecipe } from '../../pipeline/compile.ts';
import { prepareSources } from '../../sources/prepare.ts';
import { withInterrupt } from '../interrupt.ts';
import { defaultCacheDir } from '../sandbox-options.ts';

interface SourceGetFlags {
  output: string;
  sourceDir?: string;
  cacheDir: string;
}

/** Writes the recipe's sources to `<output>/<package name>`; returns that directory. */
export async function getSources(recipeFile: string, flags: SourceGetFlags, signal?: AbortSignal): Promise<string> {
  const loaded = await loadRecipe(recipeFile);
  const plan = compileRecipe(loaded, { arch: hostArch() });
  const name = plan.packages[0]!.name;
  const steps = loaded.recipe.pipeline ?? [];
  const checkoutAt = steps.findIndex((s) => s.uses?.value === 'git-checkout');
  const git = plan.sources.find((s) => s.kind === 'git');
  const sources = checkoutAt >= 0 && git ? [git] : plan.sources.filter((s) => s.kind === 'fetch');
  if (sources.length === 0) throw new BuilderError(`${recipeFile}: the main pipeline has no git-checkout or fetch source`);
  const patchStep = checkoutAt >= 0 ? steps.slice(checkoutAt + 1).find((s) => s.uses?.value === 'patch' && s.with?.patches) : undefined;
  const patches = patchStep?.with?.patches?.value.split(/\s+/).filter(Boolean) ?? [];
  const patchDir = resolve(flags.sourceDir ?? join(dirname(recipeFile), name));

  const destination = resolve(flags.output, name);
  if (await stat(destination).then(() => true, () => false)) throw new BuilderError(`${destination} already exists; remove it or choose another --output`);
  await mkdir(dirname(destination), { recursive: true });
  const prepared = await prepareSources({ ...plan, sources }, { cacheDir: flags.cacheDir, log: (l) => process.stderr.write(`${l}\n`), signal });
  // Built beside its final name and renamed, so a failure leaves no half-copied tree.
  const temp = tempPathFor(destination);
  try {
    await mkdir(temp);
    for (const p of prepared) {
      if (p.source.kind === 'git') await execa('cp', ['-a', '--', `${p.path}/.`, temp], { cancelSignal: signal });
      else await copyFile(p.path, join(temp, basename(new URL(p.source.uri, 'file:///').pathname) || p.source.cacheName));
    }
    for (const patch of patches) {
      const file = join(patchDir, patch);
      const r = await execa('patch', ['-p1', '--batch', '-i', file], { cwd: temp, reject: false, all: true, cancelSignal: signal });
      if (r.exitCode !== 0) {
        throw new BuilderError(`${recipeFile}: patch ${file} does not apply (exit ${r.exitCode ?? '?'})`, { details: (r.all ?? '').split('\n').slice(-10) });
      }
    }
    await rename(temp, destination);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    if (err instanceof BuilderError) throw err;
    throw new BuilderError(`${recipeFile}: cannot write the sources to ${destination}: ${errorMessage(err)}`, { cause: err });
  }
  return destination;
}

export function registerSourceCommand(program: Command): void {
  // As in melange, -o and --source-dir belong to `source` and may come before or after `get`.
  const source = program
    .command('source')
    .description("get a recipe's upstream sources to work on")
    .option('-o, --output <dir>', 'output directory for the extracted source (default: ./source)')
    .option('--source-dir <dir>', "directory holding the patches (default: <recipe's folder>/<package name>)");
  source
    .command('get')
    .description("check out the recipe's git-checkout source (or its downloads) into <output>/<package name>, patches applied")
    .argument('<recipe>', 'recipe file')
    .option('-o, --output <dir>', 'output directory for the extracted source (default: ./source)')
    .option('--source-dir <dir>', "directory holding the patches (default: <recipe's folder>/<package name>)")
    .option('--cache-dir <dir>', 'source cache shared with `builder build`', defaultCacheDir())
    .addHelpText('after', '\nExample:\n  builder source get vim.yaml -o ./src')
    .action(async (recipe: string, flags: Partial<SourceGetFlags> & { cacheDir: string }) => {
      const parent = source.opts<{ output?: string; sourceDir?: string }>();
      const resolved: SourceGetFlags = {
        output: flags.output ?? parent.output ?? './source',
        sourceDir: flags.sourceDir ?? parent.sourceDir,
        cacheDir: flags.cacheDir,
      };
      await withInterrupt(async (signal) => {
        console.log(`sources of ${recipe} in ${await getSources(recipe, resolved, signal)}`);
      });
    });
}
