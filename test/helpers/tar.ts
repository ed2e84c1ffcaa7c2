import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';

/** Every entry of a .tar.gz: name, mode, mtime, text. */
export async function readTarGz(file: string): Promise<{ name: string; mode: number; mtime: number; text: string }[]> {
  const out: { name: string; mode: number; mtime: number; text: string }[] = [];
  const ex = extract();
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
