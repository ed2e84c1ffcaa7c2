// Ctrl-C: the first SIGINT/SIGTERM aborts the work so it can clean up (sandboxes, VMs, temp dirs); a second
// one exits at once.
import { BuilderError } from '../errors.ts';

export class Interrupted extends BuilderError {
  override name = 'Interrupted';
}

export async function withInterrupt<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (received) process.exit(130);
    received = sig;
    process.stderr.write(`\n${sig}: stopping and cleaning up (again to exit at once)\n`);
    controller.abort(new Interrupted(`interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } catch (err) {
    if (received) throw new Interrupted(`interrupted by ${received}; cleaned up`, { cause: err });
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
