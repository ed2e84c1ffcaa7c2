// The steps stage: every planned step in order, as one progress group per pipeline, recorded in the step
// journal after each step. A resumed build skips the leading steps its journal says completed unchanged.
import type { Runner } from '../runners/runner.ts';
import { type Journal, writeJournal } from './journal.ts';
import type { Task } from './progress.ts';
import type { Session } from './session.ts';
import { type PlannedStep, runStep, type StepRecord } from './steps.ts';

export interface PipelineGroup {
  title: string;
  steps: PlannedStep[];
}

export interface StepsStageOptions {
  session: Session;
  runner: Runner;
  groups: PipelineGroup[];
  /** Rewritten after each step; absent for runs that are never resumed (tests). */
  journal?: Journal;
  /** Leading steps skipped (a resumed build). */
  skip?: number;
}

/** Runs the steps; returns a record of each that ran (skipped ones are not), with what it cost. */
export async function runSteps(o: StepsStageOptions): Promise<StepRecord[]> {
  const { session, runner } = o;
  const ws = session.workspace;
  const skip = o.skip ?? 0;
  const all = o.groups.flatMap((g) => g.steps);
  const journal = o.journal;
  if (journal) {
    journal.steps = all.slice(0, skip).map((p) => ({ ...p.identity, outcome: 'completed' }));
    await writeJournal(ws.root, journal);
  }
  const records: StepRecord[] = [];
  let index = 0;
  const tasks = o.groups.map((g): Task => ({
    title: g.title,
    skip: g.steps.length === 0 ? 'no steps' : undefined,
    subtasks: g.steps.map((planned): Task => {
      const n = index++;
      if (n < skip) return { title: planned.title, skip: 'completed in the kept workspace (--resume)' };
      return {
        title: planned.title,
        run: async (ctx) => {
          session.failedStep = planned;
          try {
            records.push(await runStep(runner, planned, ws, ctx, session.signal));
          } catch (err) {
            if (journal && !session.signal?.aborted) {
              journal.steps.push({ ...planned.identity, outcome: 'failed' });
              await writeJournal(ws.root, journal);
            }
            throw err;
          }
          session.failedStep = undefined;
          if (journal) {
            journal.steps.push({ ...planned.identity, outcome: 'completed' });
            await writeJournal(ws.root, journal);
          }
        },
      };
    }),
  }));
  await session.group(tasks);
  return records;
}
