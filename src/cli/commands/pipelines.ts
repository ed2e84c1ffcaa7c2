// `builder pipelines list` / `builder pipelines show NAME`: the pipeline library a `uses:` can reach.
import type { Command } from 'commander';
import { ConfigError, UsageError } from '../../errors.ts';
import { type PipelineDefinition, PipelineLibrary } from '../../pipeline/library.ts';
import { collect } from '../options.ts';

interface LibraryFlags {
  pipelineDir: string[];
}

/** Plain description of one definition, as `pipelines show --json` prints it. */
export interface PipelineInfo {
  name: string;
  title: string;
  description: string;
  file: string;
  origin: string;
  inputs: { name: string; required: boolean; default?: string; description: string }[];
  needs: string[];
  /** `fetch` or `git` when the pipeline gets its source on the host before the build. */
  hostSource?: 'fetch' | 'git';
  /** The pipelines its steps use. */
  uses: string[];
  steps: number;
}

export function pipelineInfo(def: PipelineDefinition): PipelineInfo {
  const c = def.config;
  const uses = new Set<string>();
  let steps = c.runs ? 1 : 0;
  const walk = (list: typeof c.pipeline) => {
    for (const s of list ?? []) {
      if (s.uses) uses.add(s.uses.value);
      if (s.runs) steps++;
      walk(s.pipeline);
    }
  };
  walk(c.pipeline);
  return {
    name: def.name,
    title: c.name?.value.trim() ?? '',
    description: c.description?.value.trim() ?? '',
    file: def.path,
    origin: def.origin,
    inputs: Object.entries(c.inputs ?? {}).map(([name, input]) => ({
      name,
      required: input.required ?? false,
      ...(input.default !== undefined && input.default.value !== '' ? { default: input.default.value } : {}),
      description: input.description?.trim() ?? '',
    })),
    needs: (c.needs?.packages ?? []).map((p) => p.value),
    ...(c.source?.fetch ? { hostSource: 'fetch' as const } : c.source?.git ? { hostSource: 'git' as const } : {}),
    uses: [...uses],
    steps,
  };
}

export function showPipeline(library: PipelineLibrary, name: string): PipelineInfo {
  const hit = library.find(name);
  if (!hit.found) {
    const located = hit.problems.filter((p) => p.location.file !== '');
    if (located.length > 0) throw new ConfigError(located);
    throw new UsageError(`pipelines show: ${hit.problems.map((p) => p.message).join('; ')}`);
  }
  return pipelineInfo(hit.definition);
}

export function renderPipelineInfo(info: PipelineInfo): string {
  const lines = [`${info.name}${info.title ? ` — ${info.title}` : ''}`, `  file: ${info.file}${info.origin === 'builtin' ? ' (built in)' : ''}`];
  if (info.description) lines.push('', ...info.description.split('\n').map((l) => `  ${l}`.trimEnd()));
  lines.push('', 'inputs:');
  if (info.inputs.length === 0) lines.push('  (none)');
  const width = Math.max(0, ...info.inputs.map((i) => i.name.length));
  for (const input of info.inputs) {
    const what = input.required ? 'required' : input.default !== undefined ? `default: ${input.default}` : 'optional';
    lines.push(`  ${input.name.padEnd(width)}  ${what}`);
    for (const l of input.description.split('\n').filter((x) => x.trim() !== '')) lines.push(`  ${' '.repeat(width)}    ${l.trim()}`);
  }
  lines.push('', `needs: ${info.needs.length ? info.needs.join(' ') : '(nothing)'}`);
  if (info.hostSource) {
    lines.push(`source: ${info.hostSource === 'fetch' ? 'downloaded' : 'cloned'} on the host into the cache before the sandbox starts`);
  }
  if (info.uses.length) lines.push(`uses: ${info.uses.join(' ')}`);
  lines.push(`steps: ${info.steps}`);
  return `${lines.join('\n')}\n`;
}

export function renderPipelineList(library: PipelineLibrary): string {
  const entries = library.list().map((s) => {
    const hit = library.find(s.name);
    const title = hit.found ? (hit.definition.config.name?.value.trim() ?? '') : '(invalid definition: see `builder pipelines show`)';
    const where = s.origin === 'builtin' ? '' : `  [${s.path}${s.overrides.length ? `, overrides ${s.overrides.join(', ')}` : ''}]`;
    return { name: s.name, text: `${title}${where}` };
  });
  const width = Math.max(0, ...entries.map((e) => e.name.length));
  return entries.map((e) => `${e.name.padEnd(width)}  ${e.text}`.trimEnd()).join('\n') + '\n';
}

export function registerPipelinesCommand(program: Command): void {
  const pipelines = program
    .command('pipelines')
    .description('list the pipelines a recipe can `uses:`, or show one (inputs, defaults, needs)');
  pipelines
    .command('list')
    .description('list the built-in pipelines and those in --pipeline-dir directories')
    .option('--pipeline-dir <dir>', 'directory of pipeline definitions searched before the built-ins (repeatable)', collect, [])
    .action((flags: LibraryFlags) => {
      process.stdout.write(renderPipelineList(new PipelineLibrary(flags.pipelineDir)));
    });
  pipelines
    .command('show')
    .description('show a pipeline: description, inputs with defaults, needed packages')
    .argument('<name>', 'pipeline name, as written after `uses:` (e.g. autoconf/configure)')
    .option('--pipeline-dir <dir>', 'directory of pipeline definitions searched before the built-ins (repeatable)', collect, [])
    .option('--json', 'print JSON instead of text', false)
    .action((name: string, flags: LibraryFlags & { json: boolean }) => {
      const info = showPipeline(new PipelineLibrary(flags.pipelineDir), name);
      process.stdout.write(flags.json ? `${JSON.stringify(info, null, 2)}\n` : renderPipelineInfo(info));
    });
}
