// The step journal: `journal.json` beside a workspace's build log, rewritten (temp name, then rename) after each
// step. Per step it records digests of what determines the step — the script as run, its environment, its
// working directory — and its outcome; for the whole build the recipe, out dir, build root and sources. A resumed
// build (`--resume`) skips the leading steps whose digests match and that completed; from the first changed
// or failed step on, everything runs.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestOf } from '../environment/cache.ts';
import { BuilderError } from '../errors.ts';

export const JOURNAL_FILE = 'journal.json';
const FORMAT = 1;

export interface StepIdentity {
  /** `<package>: <n>/<count> <name>`, for messages. */
  title: string;
  script: string;
  env: string;
  workdir: string;
}

export interface JournalStep extends StepIdentity {
  outcome: 'completed' | 'failed';
}

export interface Journal {
  format: number;
  recipe: string;
  outDir: string;
  packageName: string;
  arch: string;
  /** The build root's digest (its description when the root has none, e.g. the host). */
  root?: string;
  sources: string;
  steps: JournalStep[];
}

/** Raised for a workspace that cannot be resumed: no journal, a corrupt one, another recipe's. */
export class ResumeError extends BuilderError {
  override name = 'ResumeError';
}

export function stepIdentity(title: string, argv: string[], env: Record<string, string>, workdir: string): StepIdentity {
  return { title, script: digestOf(argv), env: digestOf(env), workdir: digestOf(workdir) };
}

export function journalPath(workspaceRoot: string): string {
  return join(workspaceRoot, JOURNAL_FILE);
}

export async function writeJournal(workspaceRoot: string, journal: Journal): Promise<void> {
  const path = journalPath(workspaceRoot);
  await writeFile(`${path}.tmp`, `${JSON.stringify(journal, null, 2)}\n`);
  await rename(`${path}.tmp`, path);
}

export async function readJournal(workspaceRoot: string): Promise<Journal> {
  const path = journalPath(workspaceRoot);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ResumeError(`--resume: ${workspaceRoot} has no step journal (${code === 'ENOENT' ? `no ${JOURNAL_FILE}` : code}); it is not a kept build workspace`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ResumeError(`--resume: ${path} is corrupt (${(err as Error).message})`);
  }
  const problem = journalProblem(data);
  if (problem) throw new ResumeError(`--resume: ${path} is corrupt (${problem})`);
  return data as Journal;
}

function journalProblem(data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null) return 'not an object';
  const j = data as Record<string, unknown>;
  if (j.format !== FORMAT) return `format ${JSON.stringify(j.format)}, expected ${FORMAT}`;
  for (const key of ['recipe', 'outDir', 'packageName', 'arch', 'sources'] as const) {
    if (typeof j[key] !== 'string') return `"${key}" is not a string`;
  }
  if (j.root !== undefined && typeof j.root !== 'string') return '"root" is not a string';
  if (!Array.isArray(j.steps)) return '"steps" is not a list';
  for (const [i, s] of (j.steps as unknown[]).entries()) {
    const step = s as Record<string, unknown>;
    if (typeof s !== 'object' || s === null) return `steps[${i}] is not an object`;
    for (const key of ['title', 'script', 'env', 'workdir'] as const) {
      if (typeof step[key] !== 'string') return `steps[${i}].${key} is not a string`;
    }
    if (step.outcome !== 'completed' && step.outcome !== 'failed') return `steps[${i}].outcome is ${JSON.stringify(step.outcome)}`;
  }
  return undefined;
}

export function newJournal(o: Omit<Journal, 'format' | 'steps'>): Journal {
  return { format: FORMAT, ...o, steps: [] };
}

/** What a resumed build does with its steps: how many leading ones it skips, and why the next one reruns. */
export interface ResumePlan {
  skip: number;
  /** Why step `skip` runs again (undefined when every step is skipped). */
  reason?: string;
}

/** Leading steps that completed last time with the same digests are skipped; the first other one says why. */
export function planResume(previous: JournalStep[], now: StepIdentity[]): ResumePlan {
  for (const [i, step] of now.entries()) {
    const before = previous[i];
    const why =
      before === undefined
        ? 'it did not run last time'
        : before.outcome === 'failed'
          ? 'it failed last time'
          : before.title !== step.title
            ? `the pipeline changed here (was "${before.title}")`
            : before.script !== step.script
              ? 'its script changed'
              : before.env !== step.env
                ? 'its environment changed'
                : before.workdir !== step.workdir
                  ? 'its working directory changed'
                  : undefined;
    if (why) return { skip: i, reason: why };
  }
  return { skip: now.length };
}

/** Why a kept workspace cannot be resumed by this build, or undefined when it can. */
export function resumeRefusal(journal: Journal, now: Pick<Journal, 'recipe' | 'packageName' | 'arch' | 'sources'>): string | undefined {
  if (journal.recipe !== now.recipe) return `it is a workspace of ${journal.recipe}, not of ${now.recipe}`;
  if (journal.packageName !== now.packageName) return `it built ${journal.packageName}, not ${now.packageName}`;
  if (journal.arch !== now.arch) return `it built for ${journal.arch}, not ${now.arch}`;
  if (journal.sources !== now.sources) return 'the sources changed since (the recipe\'s sources or the source dir)';
  return undefined;
}
