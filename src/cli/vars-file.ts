// `--vars-file FILE`: a YAML mapping of variable names to strings, merged over the recipe's `vars` before any
// substitution (melange's config.WithVarsFile: the file's values win over the recipe's).
import { readFile } from 'node:fs/promises';
import { dict, Problems, str } from '../config/decode.ts';
import { parseYaml } from '../config/yaml-source.ts';
import { ConfigError, UsageError } from '../errors.ts';

export async function readVarsFile(file: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (code ?? String(err));
    throw new UsageError(`--vars-file: ${file}: ${why}`);
  }
  const problems = new Problems();
  // An empty file holds no variables.
  const vars = dict(str)(parseYaml(text, file), '', problems);
  if (problems.list.length > 0 || !vars) throw new ConfigError(problems.list);
  return vars;
}
