// `builder query recipe.yaml TEMPLATE`: print recipe fields through a small template language.
import type { Command } from 'commander';
import { loadRecipe } from '../../config/load.ts';
import { recipeData, renderQuery } from '../../config/query.ts';

/** What `builder query` prints (without the final newline). */
export async function queryRecipe(file: string, template: string): Promise<string> {
  const { recipe } = await loadRecipe(file);
  return renderQuery(template, recipeData(recipe));
}

export function registerQueryCommand(program: Command): void {
  program
    .command('query')
    .description('print fields of a recipe through a template, e.g. {{.Package.Name}}-{{.Package.Version}}')
    .argument('<recipe>', 'recipe file')
    .argument('<template>', 'template text with {{ .Field.Path }} placeholders')
    .addHelpText(
      'after',
      `
Template syntax:
  Text outside {{ }} is printed as is. Inside, .A.B.C walks the recipe from its top level:
  - each segment names a key, compared without regard to case, "-" or "_"
    (.Package.TargetArchitecture is package.target-architecture);
  - a number indexes a list (.Subpackages.0.Name);
  - {{ "text" }} prints text, so {{ "{{" }} prints two braces.
  Strings print as written in the recipe (\${{…}} is not substituted), lists of strings space-separated,
  anything else as JSON. .Package.Epoch is 0 when the recipe has none. A missing field is an error.

Examples:
  builder query melange.yaml '{{.Package.Name}}-{{.Package.Version}}-r{{.Package.Epoch}}'
  builder query melange.yaml '{{.Package.Dependencies.Runtime}}'
  builder query melange.yaml '{{.Vars}}'`,
    )
    .action(async (recipe: string, template: string) => {
      process.stdout.write(`${await queryRecipe(recipe, template)}\n`);
    });
}
