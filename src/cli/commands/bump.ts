// `builder bump recipe.yaml VERSION`: melange's `bump`. Sets package.version (double-quoted, as melange
// writes it), resets package.epoch to 0 (or adds 1 when the version does not change), recomputes the
// expected-sha256/expected-sha512 of the main pipeline's `fetch` steps from the new downloads, and with
// --expected-commit sets the expected-commit of its version-tagged `git-checkout` steps.
//
// Unlike melange (which re-encodes the whole document), only the edited scalars are replaced in the text, so
// every comment, quote style, indentation and blank line elsewhere stays byte for byte.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { isScalar } from 'yaml';
import { writeBufferAtomic } from '../../apk/atomic.ts';
import { parseRecipe } from '../../config/load.ts';
import { applyEdits, editableYaml, insertLineAfter, keyStart, mapAt, pairOf, pipelineSteps, replaceNode as replaceScalar, scalarText, type TextEdit } from '../../config/yaml-edit.ts';
import { readYamlFile } from '../../config/yaml-source.ts';
import { ConfigError, type SourceLocation, UsageError } from '../../errors.ts';
import { hostArch } from '../../pipeline/arch.ts';
import { compileRecipe } from '../../pipeline/compile.ts';
import type { FetchSourcePlan } from '../../pipeline/plan.ts';
import { fetchToCache } from '../../sources/fetch.ts';
import { defaultCacheDir } from '../sandbox-options.ts';

export interface BumpOptions {
  expectedCommit?: string;
  /** Where new downloads are kept (they are the next build's cache hits). */
  cacheDir: string;
  log: (line: string) => void;
  signal?: AbortSignal;
}

/** The recipe text after the bump. Throws ConfigError at the key when package.version is missing. */
export async function bumpRecipeText(file: string, text: string, version: string, options: BumpOptions): Promise<string> {
  const target = version.trim();
  if (target === '' || /[\s/]/.test(target)) throw new UsageError(`bump: invalid version "${version}"`);
  const { doc, lines, root } = editableYaml(text);
  if (doc.errors.length > 0) parseRecipe(text, file); // reports the syntax errors, located
  const at = (offset: number): SourceLocation => ({ file, ...lines.linePos(offset) });
  if (!root) throw new ConfigError([{ location: at(0), path: 'package', message: 'the recipe has no package mapping' }]);
  const pkgPair = pairOf(root, 'package');
  const pkg = mapAt(root, 'package');
  if (!pkg) throw new ConfigError([{ location: at(keyStart(pkgPair) ?? 0), path: 'package', message: 'the recipe has no package mapping' }]);
  const versionNode = pairOf(pkg, 'version')?.value;
  if (!isScalar(versionNode) || versionNode.value === null || String(versionNode.value) === '') {
    throw new ConfigError([{ location: at(keyStart(pkgPair) ?? 0), path: 'package.version', message: 'bump needs package.version to be set' }]);
  }
  const edits: TextEdit[] = [];
  const epochPair = pairOf(pkg, 'epoch');
  const oldEpoch = isScalar(epochPair?.value) ? Number(String(epochPair.value.value)) : 0;
  const epoch = String(versionNode.value) === target ? (Number.isInteger(oldEpoch) ? oldEpoch : 0) + 1 : 0;
  edits.push(replaceScalar(versionNode, JSON.stringify(target)));
  if (isScalar(epochPair?.value)) edits.push(replaceScalar(epochPair.value, String(epoch)));
  // An added epoch line moves every later line of the bumped text down by one.
  let shift = 0;
  if (!isScalar(epochPair?.value) && epoch !== 0) {
    edits.push(insertLineAfter(text, versionNode, `epoch: ${epoch}`));
    shift = 1;
  }

  const steps = pipelineSteps(pairOf(root, 'pipeline')?.value);
  const gitSteps = steps.filter((s) => scalarText(pairOf(s, 'uses')?.value) === 'git-checkout');
  if (options.expectedCommit) {
    for (const step of gitSteps) {
      const withMap = mapAt(step, 'with');
      if (!withMap) continue;
      // As melange: a checkout whose tag does not follow the version is not the main one.
      const tag = scalarText(pairOf(withMap, 'tag')?.value);
      if (tag !== undefined && !tag.includes('${{package.version}}') && !tag.includes('${{vars.mangled-package-version}}')) continue;
      const commit = pairOf(withMap, 'expected-commit')?.value;
      if (isScalar(commit) && !String(commit.value).includes('${{')) edits.push(replaceScalar(commit, options.expectedCommit));
    }
  }

  const fetchSteps = steps.filter((s) => scalarText(pairOf(s, 'uses')?.value) === 'fetch');
  if (fetchSteps.length > 0) {
    // The new URIs come from compiling the bumped recipe: substitutions and var-transforms as a build does them.
    const bumped = applyEdits(text, edits);
    const plan = compileRecipe(parseRecipe(bumped, file), { arch: hostArch() });
    for (const step of fetchSteps) {
      const withMap = mapAt(step, 'with');
      if (!withMap) continue;
      const sha256 = pairOf(withMap, 'expected-sha256')?.value;
      const sha512 = pairOf(withMap, 'expected-sha512')?.value;
      if (!isScalar(sha256) && !isScalar(sha512)) continue;
      // The other edits replace scalars within their own lines, so only an added epoch line moves lines.
      const first = lines.linePos(step.range?.[0] ?? 0).line + shift;
      const last = lines.linePos(step.range?.[1] ?? 0).line + shift;
      const source = plan.sources.find((s): s is FetchSourcePlan => s.kind === 'fetch' && lineOf(s.source) >= first && lineOf(s.source) <= last);
      if (!source) continue;
      const digests = await download(source, dirname(resolve(file)), options);
      if (isScalar(sha256)) edits.push(replaceScalar(sha256, digests.sha256));
      if (isScalar(sha512)) edits.push(replaceScalar(sha512, digests.sha512));
    }
  }
  return applyEdits(text, edits);
}

function lineOf(location: string): number {
  const m = /:(\d+):\d+$/.exec(location);
  return m ? Number(m[1]) : -1;
}

async function download(source: FetchSourcePlan, baseDir: string, options: BumpOptions): Promise<{ sha256: string; sha512: string }> {
  options.log(`bump: fetching ${source.uri}`);
  const unverified: FetchSourcePlan = {
    ...source,
    sha256: undefined,
    sha512: undefined,
    unverified: true,
    cacheName: `unverified/${createHash('sha256').update(source.uri).digest('hex')}`,
  };
  const result = await fetchToCache(unverified, { cacheDir: options.cacheDir, baseDir, log: options.log, signal: options.signal });
  const h256 = createHash('sha256');
  const h512 = createHash('sha512');
  for await (const chunk of createReadStream(result.path)) {
    h256.update(chunk as Buffer);
    h512.update(chunk as Buffer);
  }
  const digests = { sha256: h256.digest('hex'), sha512: h512.digest('hex') };
  options.log(`bump:   expected-sha256: ${digests.sha256}`);
  return digests;
}

export function registerBumpCommand(program: Command): void {
  program
    .command('bump')
    .description('update a recipe to a new package version: version, epoch, fetch checksums, expected-commit')
    .argument('<recipe>', 'recipe file (rewritten in place)')
    .argument('<version>', 'the new package.version')
    .option('--expected-commit <sha>', 'set the expected-commit of the git-checkout steps that check out the version')
    .option('--cache-dir <dir>', 'where the new downloads are kept', defaultCacheDir())
    .addHelpText(
      'after',
      `
package.epoch goes back to 0 (or up by 1 when the version is unchanged). Each fetch step of the main
pipeline that has expected-sha256/expected-sha512 is downloaded at the new version and its checksums
rewritten. Only the changed values are rewritten: comments and formatting stay as they were.

Example:
  builder bump melange.yaml 1.2.4 --expected-commit 0123456789abcdef0123456789abcdef01234567`,
    )
    .action(async (recipe: string, version: string, flags: { expectedCommit?: string; cacheDir: string }) => {
      const { withInterrupt } = await import('../interrupt.ts');
      await withInterrupt(async (signal) => {
        await readYamlFile(recipe); // a missing or unreadable file is reported as for any recipe
        const text = await readFile(recipe, 'utf8');
        const mode = (await stat(recipe)).mode & 0o7777;
        const out = await bumpRecipeText(recipe, text, version, { ...flags, log: (l) => process.stderr.write(`${l}\n`), signal });
        await writeBufferAtomic(recipe, Buffer.from(out), { mode, overwrite: true, sync: true });
        process.stderr.write(`${recipe}: package.version ${JSON.stringify(version.trim())}\n`);
      });
    });
}
