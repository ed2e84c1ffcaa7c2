import type { Readable } from 'node:stream';
import tar from 'tar-stream';

export type TarEntry = Partial<tar.Header> & { name: string; body?: string };

/** A tar stream of the given entries, headers as written (hostile ones included). */
export function tarOf(entries: TarEntry[]): Readable {
  const pack = tar.pack();
  for (const { body, ...h } of entries) pack.entry(h as tar.Header, body ?? '');
  pack.finalize();
  return pack as unknown as Readable;
}
