// `--vars-file FILE`: a YAML mapping of variable names to strings, merged over the recipe's `vars` before any
// substitution (melange's config.WithVarsFile: the file's values win over the recipe's).
import { dict, Problems, str } from '../config/decode.ts';
import { parseYaml } from '../config/yaml-source.ts';
import { ConfigError } from '../errors.ts';
import { readFlagFile } from './options.ts';

export async function readVarsFile(file: string): Promise<Record<string, string>> {
  const text = await readFlagFile('--vars-file', file);
  const problems = new Problems();
  // An empty file holds no variables.
  const vars = dict(str)(parseYaml(text, file), '', problems);
  if (problems.list.length > 0 || !vars) throw new ConfigError(problems.list);
  return vars;
}
