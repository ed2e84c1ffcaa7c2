// Loading a recipe file: YAML with locations → strict schema → the rules that span keys.
import { ConfigError } from '../errors.ts';
import { Problems } from './decode.ts';
import { type PipelineStep, type Recipe, recipeDecoder } from './schema.ts';
import { parseYaml, readYamlFile, type YNode } from './yaml-source.ts';

export const PACKAGE_NAME = /^[a-zA-Z\d][a-zA-Z\d+_.-]*$/;

export interface LoadedRecipe {
  file: string;
  recipe: Recipe;
}

export async function loadRecipe(file: string): Promise<LoadedRecipe> {
  return decodeRecipe(await readYamlFile(file), file);
}

/** A recipe from text already in memory; `file` names it in errors. */
export function parseRecipe(text: string, file: string): LoadedRecipe {
  return decodeRecipe(parseYaml(text, file), file);
}

function decodeRecipe(root: YNode, file: string): LoadedRecipe {
  const problems = new Problems();
  const recipe = recipeDecoder(root, '', problems);
  if (recipe) checkRecipe(recipe, problems);
  if (problems.list.length > 0 || !recipe) throw new ConfigError(sortProblems(problems).list);
  return { file, recipe };
}

function sortProblems(problems: Problems): Problems {
  problems.list.sort((a, b) => a.location.line - b.location.line || a.location.col - b.location.col);
  return problems;
}

/** Rules that one key's decoder cannot see alone. */
function checkRecipe(recipe: Recipe, problems: Problems): void {
  const pkg = recipe.package;
  if (pkg?.name && pkg.name.value !== '' && !PACKAGE_NAME.test(pkg.name.value)) {
    problems.add(pkg.name.loc, 'package.name', `invalid package name "${pkg.name.value}": must match ${PACKAGE_NAME.source}`);
  }
  if (pkg?.version && /[\s/]/.test(pkg.version.value)) {
    problems.add(pkg.version.loc, 'package.version', `invalid version "${pkg.version.value}"`);
  }
  if (pkg?.epoch !== undefined && pkg.epoch < 0) problems.add(pkg.loc, 'package.epoch', 'epoch must not be negative');
  checkSteps(recipe.pipeline ?? [], 'pipeline', problems);
  const seen = new Map<string, string>();
  (recipe.subpackages ?? []).forEach((sub, i) => {
    const path = `subpackages[${i}]`;
    checkSteps(sub.pipeline ?? [], `${path}.pipeline`, problems);
    const name = sub.name?.value;
    // Ranged and substituted names are checked after expansion, and names under `if` only among the
    // subpackages that are built (two subpackages may share a name under opposite conditions).
    if (!name || (sub.range && sub.range.value.trim() !== '') || sub.if) return;
    if (!name.includes('${{') && !PACKAGE_NAME.test(name)) {
      problems.add(sub.name!.loc, `${path}.name`, `invalid package name "${name}"`);
    }
    if (name === pkg?.name?.value) problems.add(sub.name!.loc, `${path}.name`, `subpackage "${name}" has the main package's name`);
    const earlier = seen.get(name);
    if (earlier) problems.add(sub.name!.loc, `${path}.name`, `duplicate subpackage name "${name}" (first at ${earlier})`);
    else seen.set(name, `${sub.name!.loc.line}:${sub.name!.loc.col}`);
  });
  checkSteps(recipe.test?.pipeline ?? [], 'test.pipeline', problems);
}

export function checkSteps(steps: PipelineStep[], path: string, problems: Problems): void {
  steps.forEach((s, i) => {
    const p = `${path}[${i}]`;
    if (s.uses && s.runs) problems.add(s.loc, p, 'a step cannot have both "uses" and "runs"');
    if (s.with && !s.uses) problems.add(s.loc, p, '"with" needs "uses"');
    if (s.uses && s.pipeline) problems.add(s.loc, p, 'a step cannot have both "uses" and "pipeline"');
    if (s.pipeline) checkSteps(s.pipeline, `${p}.pipeline`, problems);
  });
}
