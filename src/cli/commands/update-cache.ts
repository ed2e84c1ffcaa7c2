// `builder update-cache recipe.yaml...`: melange's `update-cache`. Fetches every source of the recipes
// (downloads and git checkouts, checksums verified) into the cache dir a build mounts at /var/cache/melange,
// through the same host-side fetch a build runs, so a later build (or one without network) finds them.
import type { Command } from 'commander';
import { prepareSources } from '../../sources/prepare.ts';
import { collect } from '../options.ts';
import { defaultCacheDir } from '../sandbox-options.ts';
import { hostArch } from '../../pipeline/arch.ts';
import { compileRecipeFile } from './compile.ts';
import { withInterrupt } from '../interrupt.ts';

interface UpdateCacheFlags {
  cacheDir: string;
  arch: string;
  pipelineDir: string[];
  buildOption: string[];
}

export function registerUpdateCacheCommand(program: Command): void {
  program
    .command('update-cache')
    .description("fetch the recipes' sources (fetch, git-checkout) into the source cache")
    .argument('<recipe...>', 'recipe files')
    .option('--cache-dir <dir>', 'directory used for cached inputs (the one `builder build --cache-dir` mounts)', defaultCacheDir())
    .option('--arch <arch>', 'architecture the recipes are compiled for (sources may depend on it)', hostArch())
    .option('--pipeline-dir <dir>', 'directory of pipeline definitions searched before the built-ins (repeatable)', collect, [])
    .option('--build-option <name>', "enable one of the recipe's `options` (repeatable)", collect, [])
    .addHelpText(
      'after',
      `
Each source is stored as a build stores it (downloads by checksum, checkouts by what determines them), so
the next \`builder build --cache-dir <same dir>\` uses it without fetching. melange's default cache dir is
/var/cache/melange; builder's is the same default as \`builder build\` (~/.cache/builder).`,
    )
    .action(async (recipes: string[], flags: UpdateCacheFlags) => {
      await withInterrupt(async (signal) => {
        for (const recipe of recipes) {
          const plan = await compileRecipeFile(recipe, flags);
          if (plan.sources.length === 0) {
            console.log(`${recipe}: no sources to fetch`);
            continue;
          }
          const done = await prepareSources(plan, { cacheDir: flags.cacheDir, log: (l) => process.stderr.write(`${l}\n`), signal });
          for (const s of done) {
            const what = s.source.kind === 'fetch' ? s.source.uri : `${s.source.repository}${s.commit ? `@${s.commit}` : ''}`;
            console.log(`${s.cached ? 'cached ' : 'fetched'} ${what} -> ${s.path}`);
          }
        }
      });
    });
}
