// `builder package-version recipe.yaml`: the package a recipe builds, `<name>-<version>-r<epoch>`, as
// melange prints it (the query `{{ .Package.Name }}-{{ .Package.Version }}-r{{ .Package.Epoch }}`).
import type { Command } from 'commander';
import { queryRecipe } from './query.ts';

export const PACKAGE_VERSION_TEMPLATE = '{{ .Package.Name }}-{{ .Package.Version }}-r{{ .Package.Epoch }}';

export function registerPackageVersionCommand(program: Command): void {
  program
    .command('package-version')
    .description('print the package a recipe builds: <name>-<version>-r<epoch>')
    .argument('<recipe>', 'recipe file')
    .addHelpText('after', `\nThe same as: builder query <recipe> '${PACKAGE_VERSION_TEMPLATE}'`)
    .action(async (recipe: string) => {
      process.stdout.write(`${await queryRecipe(recipe, PACKAGE_VERSION_TEMPLATE)}\n`);
    });
}
