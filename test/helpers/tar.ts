import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';

export type TarEntry = Partial<tar.Header> & { name: string; body?: string };

/** A tar stream of the given entries, headers as written (hostile ones included). */
export function tarOf(entries: TarEntry[]): Readable {
  const pack = tar.pack();
  for (const { body, ...h } of entries) pack.entry(h as tar.Header, body ?? '');
  pack.finalize();
  return pack as unknown as Readable;
}

/** Every entry of a .tar.gz: name, mode, mtime, text. */
export async function readTarGz(file: string): Promise<{ name: string; mode: number; mtime: number; text: string }[]> {
  const out: { name: string; mode: number; mtime: number; text: string }[] = [];
  const ex = tar.extract();
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.push({ name: entry.header.name, mode: entry.header.mode ?? 0, mtime: (entry.header.mtime?.getTime() ?? 0) / 1000, text: Buffer.concat(chunks).toString('utf8') });
    }
  })();
  createReadStream(file).pipe(createGunzip()).pipe(ex);
  await done;
  return out;
}
