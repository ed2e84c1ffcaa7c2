// Turns output chunks into whole lines and keeps the last few for error messages.

export class LineSplitter {
  #partial = '';
  readonly #emit: (line: string) => void;
  constructor(emit: (line: string) => void) {
    this.#emit = emit;
  }
  push(chunk: Buffer | string): void {
    const text = this.#partial + chunk.toString();
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    for (const l of lines) this.#emit(l.replace(/\r$/, ''));
  }
  flush(): void {
    if (this.#partial !== '') this.#emit(this.#partial);
    this.#partial = '';
  }
}

export class Tail {
  readonly #lines: string[] = [];
  readonly #size: number;
  constructor(size: number) {
    this.#size = size;
  }
  add(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > this.#size) this.#lines.shift();
  }
  get lines(): string[] {
    return [...this.#lines];
  }
}
