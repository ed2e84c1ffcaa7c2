// `--log-level warn` / `error`: the tasks run as always, but only problems (the errors thrown) are printed.
import { Writable } from 'node:stream';
import { chooseRenderer, type ProgressRenderer } from '../build/progress.ts';

export function quietRenderer(): ProgressRenderer {
  const discard = new Writable({ write: (_chunk, _enc, done) => done() }) as unknown as NodeJS.WriteStream;
  return { run: (tasks) => chooseRenderer({ plain: true, stream: discard }).run(tasks), note: () => undefined };
}
