// `builder build --resume[=auto|PATH]`: which kept workspace a build continues in, and which of its steps it
// skips. Anything that makes the kept workspace unlike what this build would make — another recipe, other
// sources, another build root — refuses the resume (or, with `auto`, builds from scratch); nothing is mixed.
import { readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { digestOf } from '../environment/cache.ts';
import { errorMessage } from '../errors.ts';
import type { BuildPlan } from '../pipeline/plan.ts';
import { type Journal, journalPath, planResume, readJournal, ResumeError, resumeRefusal } from './journal.ts';
import type { ProgressRenderer } from './progress.ts';
import type { PlannedStep } from './steps.ts';
import { sourceFingerprint } from './workspace.ts';

/** `--resume`: `true` finds the workspace from the recipe and out dir, `auto` too but falls back to a clean build. */
export type ResumeRequest = true | 'auto' | string;

export interface KeptWorkspace {
  root: string;
  journal: Journal;
}

type Identity = Pick<Journal, 'recipe' | 'outDir' | 'packageName' | 'arch' | 'sources'>;

/** What the workspace is made of besides the steps: the recipe's sources and the source dir copied in. */
export async function sourcesDigest(plan: Pick<BuildPlan, 'sources'>, sourceDir: string | undefined, exclude: string[]): Promise<string> {
  return digestOf({ sources: plan.sources, sourceDir: sourceDir === undefined ? null : await sourceFingerprint(sourceDir, exclude) });
}

/** The kept workspace to resume, or undefined for a clean build (`auto` only). */
export async function findResumable(request: ResumeRequest, now: Identity, workspaceDir: string | undefined, progress: ProgressRenderer): Promise<KeptWorkspace | undefined> {
  const auto = request === 'auto';
  if (request !== true && !auto) {
    const root = resolve(request);
    const journal = await readJournal(root);
    const refusal = resumeRefusal(journal, now);
    if (refusal) throw new ResumeError(`--resume: cannot resume ${root}: ${refusal}`);
    return { root, journal };
  }
  const parent = resolve(workspaceDir ?? tmpdir());
  const candidates: { root: string; journal: Journal; mtime: number }[] = [];
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (!name.startsWith(`builder-${now.packageName}-`)) continue;
    const root = join(parent, name);
    const st = await stat(journalPath(root)).catch(() => undefined);
    if (!st) continue;
    try {
      const journal = await readJournal(root);
      if (journal.recipe === now.recipe && journal.outDir === now.outDir) candidates.push({ root, journal, mtime: st.mtimeMs });
    } catch (err) {
      if (!auto) throw err;
      progress.note(`--resume=auto: ignoring ${root}: ${errorMessage(err)}`);
    }
  }
  const newest = candidates.sort((a, b) => b.mtime - a.mtime)[0];
  if (!newest) {
    const why = `no kept workspace of ${now.recipe} (out dir ${now.outDir}) under ${parent}`;
    if (!auto) throw new ResumeError(`--resume: ${why}; a failed build keeps one (or pass --resume=PATH)`);
    progress.note(`--resume=auto: ${why}: building from scratch`);
    return undefined;
  }
  const refusal = resumeRefusal(newest.journal, now);
  if (refusal) {
    if (!auto) throw new ResumeError(`--resume: cannot resume ${newest.root}: ${refusal}`);
    progress.note(`--resume=auto: not resuming ${newest.root}: ${refusal}: building from scratch`);
    return undefined;
  }
  return { root: newest.root, journal: newest.journal };
}

export type ResumeDecision = { refusal: string } | { refusal?: undefined; skip: number; lines: string[] };

/** Compares the kept journal with this build's root and steps (known once the root is prepared). */
export function resumeSteps(kept: KeptWorkspace, now: Journal, steps: PlannedStep[]): ResumeDecision {
  if (kept.journal.root !== now.root) {
    return { refusal: `the build root changed since (was ${short(kept.journal.root)}, now ${short(now.root)})` };
  }
  const plan = planResume(kept.journal.steps, steps.map((s) => s.identity));
  if (plan.skip === 0) {
    // Nothing to gain from the kept workspace, and its state would differ from a fresh one's.
    return { skip: 0, lines: [`--resume: nothing to skip in ${kept.root} (${steps[0] ? `${steps[0].packageName}: ${steps[0].title}: ` : ''}${plan.reason}): building in a fresh workspace`] };
  }
  const lines = [`resuming in ${kept.root}: skipping ${plan.skip} completed step(s): ${steps.slice(0, plan.skip).map((s) => `${s.packageName}: ${s.title}`).join(', ')}`];
  const next = steps[plan.skip];
  if (next) lines.push(`rerunning from ${next.packageName}: ${next.title}: ${plan.reason}`);
  return { skip: plan.skip, lines };
}

function short(digest: string | undefined): string {
  return digest === undefined ? 'none' : /^[0-9a-f]{64}$/.test(digest) ? digest.slice(0, 12) : JSON.stringify(digest);
}
