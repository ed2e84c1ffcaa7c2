// The pipelines a `uses:` can name: definition files from `--pipeline-dir` directories (searched first, in the
// order given), then the built-in set shipped in ./builtin. `uses: autoconf/make` is `<dir>/autoconf/make.yaml`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Problems } from '../config/decode.ts';
import { editDistance } from '../config/suggest.ts';
import { type PipelineDefinitionConfig, pipelineDefinitionDecoder } from '../config/schema.ts';
import { parseYaml } from '../config/yaml-source.ts';
import { ConfigError, type ConfigProblem, UsageError } from '../errors.ts';

export const BUILTIN_PIPELINE_DIR = fileURLToPath(new URL('./builtin/', import.meta.url));

export interface PipelineDefinition {
  name: string;
  /** The definition file as messages name it (`<builtin>/fetch.yaml` for built-ins). */
  file: string;
  /** The definition file on disk. */
  path: string;
  /** The `--pipeline-dir` it came from, or `builtin`. */
  origin: string;
  config: PipelineDefinitionConfig;
}

export type PipelineLookup =
  | { found: true; definition: PipelineDefinition }
  | { found: false; problems: ConfigProblem[] };

export interface PipelineSummary {
  name: string;
  origin: string;
  /** The definition file on disk. */
  path: string;
  /** Names a `--pipeline-dir` definition hides among later directories and the built-ins. */
  overrides: string[];
}

/** Why a `uses:` name is not acceptable as a path under a pipeline directory, or undefined when it is. */
export function pipelineNameProblem(name: string): string | undefined {
  if (name.trim() === '') return 'a pipeline name must not be empty';
  if (name.includes('\\')) return 'a pipeline name must not contain "\\"';
  if (name.includes('\0')) return 'a pipeline name must not contain NUL';
  if (name.startsWith('/')) return 'a pipeline name must be relative (like "autoconf/make"), not an absolute path';
  const parts = name.split('/');
  if (parts.includes('..')) return 'a pipeline name must not contain ".." segments';
  if (parts.some((p) => p === '' || p === '.')) return 'a pipeline name must not contain empty or "." segments';
  if (name.endsWith('.yaml')) return 'a pipeline name is given without ".yaml"';
  return undefined;
}

/**
 * Resolves and caches pipeline definitions. One library can serve many compilations (definitions are read
 * once); it is not shared between processes and holds nothing but its cache.
 */
export class PipelineLibrary {
  readonly dirs: string[];
  private readonly cache = new Map<string, PipelineLookup>();

  /** Throws UsageError when a directory does not exist. */
  constructor(dirs: readonly string[] = []) {
    for (const dir of dirs) {
      let isDir = false;
      try {
        isDir = statSync(dir).isDirectory();
      } catch {
        isDir = false;
      }
      if (!isDir) throw new UsageError(`--pipeline-dir: ${dir} is not a directory`);
    }
    this.dirs = [...dirs];
  }

  /** The definition `uses: name` refers to, or the problems that prevent using it. */
  find(name: string): PipelineLookup {
    let hit = this.cache.get(name);
    if (!hit) {
      hit = this.load(name);
      this.cache.set(name, hit);
    }
    return hit;
  }

  private load(name: string): PipelineLookup {
    const unusable = pipelineNameProblem(name);
    if (unusable) return { found: false, problems: [problem('', unusable)] };
    for (const [dir, origin] of [...this.dirs.map((d) => [d, d] as const), [BUILTIN_PIPELINE_DIR, 'builtin'] as const]) {
      const file = join(dir, `${name}.yaml`);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        return { found: false, problems: [{ location: { file, line: 0, col: 0 }, path: '', message: `cannot read pipeline definition: ${code ?? String(err)}` }] };
      }
      const displayFile = origin === 'builtin' ? `${BUILTIN_DISPLAY}/${name}.yaml` : file;
      try {
        const problems = new Problems();
        const config = pipelineDefinitionDecoder(parseYaml(text, displayFile), '', problems);
        if (problems.list.length > 0 || !config) return { found: false, problems: problems.list };
        return { found: true, definition: { name, file: displayFile, path: file, origin, config } };
      } catch (err) {
        if (err instanceof ConfigError) return { found: false, problems: err.problems };
        throw err;
      }
    }
    return { found: false, problems: [problem('', `no pipeline named "${name}"${this.suggestion(name)}`)] };
  }

  private suggestion(name: string): string {
    const names = this.list().map((s) => s.name);
    const near = nearestName(name, names);
    return near ? ` (did you mean "${near}"?)` : ` (see \`builder pipelines list\`)`;
  }

  /** Every definition a `uses:` can reach, by name; a `--pipeline-dir` entry hides later ones of its name. */
  list(): PipelineSummary[] {
    const byName = new Map<string, PipelineSummary>();
    for (const [dir, origin] of [...this.dirs.map((d) => [d, d] as const), [BUILTIN_PIPELINE_DIR, 'builtin'] as const]) {
      for (const name of definitionNames(dir)) {
        const existing = byName.get(name);
        const path = join(dir, `${name}.yaml`);
        if (existing) existing.overrides.push(origin === 'builtin' ? `${BUILTIN_DISPLAY}/${name}.yaml` : path);
        else byName.set(name, { name, origin, path, overrides: [] });
      }
    }
    return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

/** How built-in definition files are named in messages and plans (stable across installations). */
export const BUILTIN_DISPLAY = '<builtin>';

function problem(path: string, message: string): ConfigProblem {
  return { location: { file: '', line: 0, col: 0 }, path, message };
}

function definitionNames(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir, { recursive: true, encoding: 'utf8' });
  } catch {
    return [];
  }
  return entries
    .map((e) => e.split(sep).join('/'))
    .filter((e) => e.endsWith('.yaml') && !e.split('/').some((p) => p.startsWith('.')))
    .map((e) => e.slice(0, -'.yaml'.length))
    .sort();
}

function nearestName(name: string, names: string[]): string | undefined {
  // Compare whole names and, for "dir/name", the last segment, so `uses: make` finds `autoconf/make`.
  let best: string | undefined;
  let bestScore = Infinity;
  for (const candidate of names) {
    const last = candidate.split('/').pop()!;
    const score = Math.min(editDistance(name, candidate), last === name ? 0.5 : editDistance(name, last) + 1);
    if (score < bestScore) {
      best = candidate;
      bestScore = score;
    }
  }
  return bestScore <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}
