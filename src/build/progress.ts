// Progress of a build as a static tree of tasks. On a terminal it is drawn by listr2 (current step, elapsed
// time, the tail of the step's output); otherwise (CI=true, pipes, log files) as plain timestamped lines, each
// top-level stage folded into a `::group::` when GITHUB_ACTIONS=true (the Actions log shows one line per stage).
import { Listr, type ListrTask, PRESET_TIMER } from 'listr2';

export interface TaskContext {
  /** One line of output from the task (a step's stdout/stderr line, a status note). */
  output(line: string): void;
}

export interface Task {
  title: string;
  run?: (ctx: TaskContext) => Promise<void>;
  subtasks?: Task[];
  /** Skip with this reason instead of running. */
  skip?: string;
}

export interface ProgressRenderer {
  run(tasks: Task[]): Promise<void>;
  /** A line outside any task (summaries, warnings). */
  note(line: string): void;
}

export function chooseRenderer(options: { stream?: NodeJS.WriteStream; plain?: boolean } = {}): ProgressRenderer {
  const stream = options.stream ?? process.stderr;
  const plain = options.plain ?? (!stream.isTTY || process.env.CI === 'true' || process.env.TERM === 'dumb');
  return plain ? new PlainRenderer(stream, { groups: process.env.GITHUB_ACTIONS === 'true' }) : new ListrRenderer();
}

const TAIL_LINES = 5;

export class ListrRenderer implements ProgressRenderer {
  async run(tasks: Task[]): Promise<void> {
    const toListr = (t: Task): ListrTask => ({
      title: t.title,
      skip: t.skip ?? false,
      rendererOptions: { outputBar: TAIL_LINES, persistentOutput: false, timer: PRESET_TIMER },
      task: async (_ctx, handle) => {
        if (t.subtasks) {
          return handle.newListr(t.subtasks.map(toListr), { concurrent: false, exitOnError: true });
        }
        await t.run?.({ output: (line) => (handle.output = line) });
        return undefined;
      },
    });
    const list = new Listr(tasks.map(toListr), {
      concurrent: false,
      exitOnError: true,
      registerSignalListeners: false,
      rendererOptions: { collapseSubtasks: false, showErrorMessage: false, timer: PRESET_TIMER },
    });
    await list.run();
  }

  note(line: string): void {
    process.stderr.write(`${line}\n`);
  }
}

export class PlainRenderer implements ProgressRenderer {
  readonly #out: NodeJS.WritableStream;
  readonly #groups: boolean;
  constructor(out: NodeJS.WritableStream, options: { groups?: boolean } = {}) {
    this.#out = out;
    this.#groups = options.groups ?? false;
  }

  #line(text: string): void {
    this.#out.write(`[${new Date().toISOString().slice(11, 23)}] ${text}\n`);
  }

  async run(tasks: Task[], depth = 0): Promise<void> {
    const indent = '  '.repeat(depth);
    for (const t of tasks) {
      if (t.skip) {
        this.#line(`${indent}- ${t.title} (skipped: ${t.skip})`);
        continue;
      }
      const started = performance.now();
      // Workflow commands must start the line; groups do not nest, so only top-level stages get one.
      const group = this.#groups && depth === 0;
      if (group) this.#out.write(`::group::${t.title}\n`);
      this.#line(`${indent}▶ ${t.title}`);
      try {
        if (t.subtasks) await this.run(t.subtasks, depth + 1);
        await t.run?.({ output: (line) => this.#line(`${indent}  │ ${line}`) });
      } catch (err) {
        // Closed before the failure line, so the failed stage shows unfolded.
        if (group) this.#out.write('::endgroup::\n');
        this.#line(`${indent}✖ ${t.title} (${seconds(started)})`);
        throw err;
      }
      this.#line(`${indent}✔ ${t.title} (${seconds(started)})`);
      if (group) this.#out.write('::endgroup::\n');
    }
  }

  note(line: string): void {
    this.#line(line);
  }
}

function seconds(started: number): string {
  return `${((performance.now() - started) / 1000).toFixed(2)}s`;
}
