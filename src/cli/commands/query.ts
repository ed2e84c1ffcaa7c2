// `builder query recipe.yaml TEMPLATE`: melange's `query`: recipe fields through a Go text/template.
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
    .description('print fields of a recipe through a Go template, e.g. {{ .Package.Name }}-{{ .Package.Version }}')
    .argument('<recipe>', 'recipe file')
    .argument('<template>', 'Go template text, e.g. {{ .Package.Name }}')
    .addHelpText(
      'after',
      `
Template syntax: Go's text/template, as melange query runs it.
  {{ .Package.Name }} walks the recipe from its top level; a segment matches a key without regard to case,
  "-" or "_" (.Package.TargetArchitecture is package.target-architecture); a number indexes a list
  (.Subpackages.0.Name). Variables: $ (the recipe), {{ $x := ... }}, {{ range $i, $v := ... }}.
  Actions: if / else if / else, range / else, with / else, end; pipes (|), parentheses, {{- -}} trimming,
  {{/* comments */}}, "strings" and \`raw strings\`.
  Functions: len index slice printf print println eq ne lt le gt ge and or not urlquery.
  Scalars print as written (\${{...}} is not substituted), lists as [a b], mappings as map[k:v].
  .Package.Epoch is 0 when the recipe has none. Printing a field the recipe does not set is an error;
  if/with/range/len and the comparisons take it as empty.

Examples:
  builder query melange.yaml '{{ .Package.Name }}-{{ .Package.Version }}-r{{ .Package.Epoch }}'
  builder query melange.yaml '{{ range .Subpackages }}{{ .Name }} {{ end }}'
  builder query melange.yaml '{{ index .Vars "mangled-package-version" }}'`,
    )
    .action(async (recipe: string, template: string) => {
      process.stdout.write(`${await queryRecipe(recipe, template)}\n`);
    });
}
