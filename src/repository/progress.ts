// Progress of concurrent builds. Each build gets the plain renderer of src/build/progress.ts writing into a
// stream of its own: in CI (or any non-terminal) its lines go out prefixed with the recipe's name; on a
// terminal a board keeps one live line per running build (its latest line), redrawn in place.
import { Writable } from 'node:stream';
import { PlainRenderer, type ProgressRenderer } from '../build/progress.ts';
import type { RecipeOutcome } from './schedule.ts';

export interface BuildProgress {
  /** The renderer for one build and how to close its line. */
  open(name: string): { renderer: ProgressRenderer; done: (outcome: RecipeOutcome) => void };
  note(line: string): void;
}

function lineStream(onLine: (line: string) => void): Writable {
  let partial = '';
  return new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLine(l);
      cb();
    },
  });
}

function outcomeLine(o: RecipeOutcome): string {
  return o.status === 'failed' ? `✖ ${o.recipe} failed: ${o.error?.split('\n')[0] ?? ''}` : `✔ ${o.recipe} built`;
}

export function chooseBuildProgress(options: { stream?: NodeJS.WriteStream; plain?: boolean } = {}): BuildProgress {
  const stream = options.stream ?? process.stderr;
  const plain = options.plain ?? (!stream.isTTY || process.env.CI === 'true' || process.env.TERM === 'dumb');
  return plain ? new PrefixedProgress(stream) : new BoardProgress(stream);
}

class PrefixedProgress implements BuildProgress {
  readonly #out: NodeJS.WritableStream;
  constructor(out: NodeJS.WritableStream) {
    this.#out = out;
  }
  open(name: string) {
    const renderer = new PlainRenderer(lineStream((l) => this.#out.write(`${name} | ${l}\n`)));
    return { renderer, done: (o: RecipeOutcome) => this.#out.write(`${name} | ${outcomeLine(o)}\n`) };
  }
  note(line: string): void {
    this.#out.write(`${line}\n`);
  }
}

class BoardProgress implements BuildProgress {
  readonly #out: NodeJS.WriteStream;
  readonly #lines = new Map<string, string>();
  #drawn = 0;
  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
  }
  #redraw(above: string[] = []): void {
    const width = Math.max(20, (this.#out.columns ?? 100) - 1);
    let text = this.#drawn > 0 ? `\x1b[${this.#drawn}A\x1b[J` : '';
    for (const l of above) text += `${l}\n`;
    for (const [name, line] of this.#lines) text += `${`${name} │ ${line}`.slice(0, width)}\n`;
    this.#drawn = this.#lines.size;
    this.#out.write(text);
  }
  open(name: string) {
    this.#lines.set(name, 'starting');
    this.#redraw();
    // The plain renderer's lines start with a timestamp; the board shows the rest of the latest one.
    const renderer = new PlainRenderer(lineStream((l) => {
      this.#lines.set(name, l.replace(/^\[[\d:.]+\] /, '').trim());
      this.#redraw();
    }));
    return {
      renderer,
      done: (o: RecipeOutcome) => {
        this.#lines.delete(name);
        this.#redraw([outcomeLine(o)]);
      },
    };
  }
  note(line: string): void {
    this.#redraw([line]);
  }
}
