// `builder source get recipe.yaml -o DIR` and `builder source pop recipe.yaml`: melange's `source`.
// `get`: the recipe's upstream source as a directory to work in: the main pipeline's first git-checkout
// (fetched through the build's own host-side checkout and cache), copied with its .git to
// <DIR>/<package name>, with the patches of the first `patch` or `git-am` step after it applied, each as a
// commit. Where melange knows only git-checkout, a recipe whose sources are downloads gets the downloaded
// files (not unpacked) instead. `pop`: the commits on top of the expected-commit there become patch files
// in the source dir (git format-patch), and the recipe applies them with `git-am`.
import { copyFile, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { execa } from 'execa';
import { isMap, isNode, isSeq, type YAMLMap } from 'yaml';
import { tempPathFor } from '../../apk/atomic.ts';
import { writeBufferAtomic } from '../../apk/atomic.ts';
import { loadRecipe } from '../../config/load.ts';
import { applyEdits, columnOf, editableYaml, mapAt, pairOf, replaceNode, scalarText, type TextEdit } from '../../config/yaml-edit.ts';
import { BuilderError, ConfigError, errorMessage } from '../../errors.ts';
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
  const isGit = sources[0]?.kind === 'git';
  if (sources.length === 0) throw new BuilderError(`${recipeFile}: the main pipeline has no git-checkout or fetch source`);
  const patchStep = checkoutAt >= 0 ? steps.slice(checkoutAt + 1).find((s) => ['patch', 'git-am'].includes(s.uses?.value ?? '') && s.with?.patches) : undefined;
  const withGitAm = patchStep?.uses?.value === 'git-am';
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
    // Each patch becomes a commit, so that `source pop` turns them (and the user's own commits) back into patches.
    const gitArgs = ['-c', 'user.name=builder', '-c', 'user.email=builder@localhost', '-c', 'safe.directory=*'];
    for (const patch of patches) {
      const file = join(patchDir, patch);
      const run = (cmd: string, args: string[]) => execa(cmd, args, { cwd: temp, reject: false, all: true, cancelSignal: signal });
      let r = withGitAm ? await run('git', [...gitArgs, 'am', file]) : await run('patch', ['-p1', '--batch', '-i', file]);
      if (r.exitCode === 0 && !withGitAm && isGit) {
        r = await run('git', ['add', '-A']);
        if (r.exitCode === 0) r = await run('git', [...gitArgs, 'commit', '-q', '-m', patch]);
      }
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

interface PopResult {
  patches: string[];
  recipeText: string;
}

/** Patches for the commits on top of expected-commit in `<output>/<name>`, and the recipe using them. */
export async function popSources(recipeFile: string, flags: Omit<SourceGetFlags, 'cacheDir'>): Promise<PopResult> {
  const loaded = await loadRecipe(recipeFile);
  const name = loaded.recipe.package?.name?.value ?? '';
  const text = await readFile(recipeFile, 'utf8');
  const { root, lines } = editableYaml(text);
  const pipeline = pairOf(root, 'pipeline')?.value;
  const steps = isSeq(pipeline) ? pipeline.items.filter((s): s is YAMLMap => isMap(s)) : [];
  const checkout = steps.find((s) => scalarText(pairOf(s, 'uses')?.value) === 'git-checkout');
  const expected = scalarText(pairOf(mapAt(checkout, 'with'), 'expected-commit')?.value);
  if (!checkout || !expected) {
    const loc = { file: recipeFile, ...lines.linePos(checkout?.range?.[0] ?? 0) };
    throw new ConfigError([{ location: loc, path: 'pipeline', message: 'source pop needs a git-checkout step with an expected-commit' }]);
  }
  const work = resolve(flags.output, name);
  const patchDir = resolve(flags.sourceDir ?? join(dirname(recipeFile), name));
  await mkdir(patchDir, { recursive: true });
  const r = await execa('git', ['-c', 'safe.directory=*', 'format-patch', '--no-signature', '-o', patchDir, `${expected}..HEAD`], { cwd: work, reject: false });
  if (r.exitCode !== 0) throw new BuilderError(`${work}: git format-patch ${expected}..HEAD failed`, { details: r.stderr.split('\n').slice(-10) });
  const patches = r.stdout.split('\n').filter(Boolean).map((f) => basename(f));
  if (patches.length === 0) throw new BuilderError(`${work}: no commits on top of expected-commit ${expected}; nothing to pop`);

  const edits: TextEdit[] = [];
  const at = steps.indexOf(checkout);
  const patchStep = steps.slice(at + 1).find((s) => ['patch', 'git-am'].includes(scalarText(pairOf(s, 'uses')?.value) ?? ''));
  const list = patches.join(' ');
  const patchesNode = pairOf(mapAt(patchStep, 'with'), 'patches')?.value;
  const usesNode = pairOf(patchStep, 'uses')?.value;
  if (isNode(usesNode) && isNode(patchesNode)) {
    edits.push(replaceNode(usesNode, 'git-am'), replaceNode(patchesNode, list));
  } else {
    // A new step right after the checkout's last line, in the list's own indentation.
    const col = columnOf(text, checkout.range?.[0] ?? 0);
    const lastContent = text.slice(0, checkout.range?.[1] ?? 0).trimEnd().length;
    const eol = text.indexOf('\n', lastContent);
    const pos = eol < 0 ? text.length : eol;
    const pad = (n: number) => ' '.repeat(Math.max(0, n));
    edits.push({ start: pos, end: pos, text: `\n${pad(col - 2)}- uses: git-am\n${pad(col)}with:\n${pad(col + 2)}patches: ${list}` });
  }
  return { patches, recipeText: applyEdits(text, edits) };
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
  source
    .command('pop')
    .description('turn the commits made on the checked-out source into patches and make the recipe apply them with git-am')
    .argument('<recipe>', 'recipe file (rewritten in place)')
    .option('-o, --output <dir>', 'directory `source get` extracted to (default: ./source)')
    .option('--source-dir <dir>', "where the patches are written (default: <recipe's folder>/<package name>)")
    .action(async (recipe: string, flags: Partial<SourceGetFlags>) => {
      const parent = source.opts<{ output?: string; sourceDir?: string }>();
      const result = await popSources(recipe, { output: flags.output ?? parent.output ?? './source', sourceDir: flags.sourceDir ?? parent.sourceDir });
      const mode = (await stat(recipe)).mode & 0o7777;
      await writeBufferAtomic(recipe, Buffer.from(result.recipeText), { mode, overwrite: true, sync: true });
      console.log(`${recipe}: git-am applies ${result.patches.join(', ')}`);
    });
}
