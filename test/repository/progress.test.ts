// The progress of concurrent builds: prefixed lines off a terminal, one live line per running build on one.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { chooseBuildProgress } from '../../src/repository/progress.ts';
import type { RecipeOutcome } from '../../src/repository/schedule.ts';

function capture(tty: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(stream, { isTTY: tty, columns: 80 });
  return { stream, text: () => text };
}

const done = (recipe: string): RecipeOutcome => ({ recipe, file: `${recipe}.yaml`, status: 'built', dependsOn: [], packages: [] });

describe('build progress', () => {
  it('prefixes every line with the recipe in CI', async () => {
    const out = capture(false);
    const p = chooseBuildProgress({ stream: out.stream, plain: true });
    const a = p.open('alpha');
    const b = p.open('beta');
    await Promise.all([
      a.renderer.run([{ title: 'Step A', run: async (ctx) => ctx.output('from a') }]),
      b.renderer.run([{ title: 'Step B', run: async (ctx) => ctx.output('from b') }]),
    ]);
    a.done(done('alpha'));
    const lines = out.text().trimEnd().split('\n');
    expect(lines.every((l) => /^(alpha|beta) \| /.test(l))).toBe(true);
    expect(out.text()).toMatch(/^alpha \| \[[\d:.]+\]   │ from a$/m);
    expect(out.text()).toMatch(/^beta \| \[[\d:.]+\] ▶ Step B$/m);
    expect(out.text()).toMatch(/^alpha \| ✔ alpha built$/m);
  });

  it('keeps one live line per running build on a terminal', async () => {
    const out = capture(true);
    const p = chooseBuildProgress({ stream: out.stream, plain: false });
    const a = p.open('alpha');
    const b = p.open('beta');
    await a.renderer.run([{ title: 'Step A', run: async (ctx) => ctx.output('working on a') }]);
    // The board is redrawn in place: cursor up over the lines drawn before, clear, the lines again.
    const last = out.text().split('\x1b[2A\x1b[J').at(-1)!;
    expect(last).toMatch(/^alpha │ ✔ Step A \([\d.]+s\)\nbeta │ starting\n$/);
    a.done(done('alpha'));
    const after = out.text().split('\x1b[2A\x1b[J').at(-1)!;
    expect(after).toBe('✔ alpha built\nbeta │ starting\n');
    b.done(done('beta'));
    expect(out.text().endsWith('\x1b[1A\x1b[J✔ beta built\n')).toBe(true);
  });
});
