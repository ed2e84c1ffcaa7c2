// Re-signing an existing package: a new signature stream in front of the unchanged control and data streams.
// The control stream's compressed bytes are what is signed, so nothing else needs to be rewritten.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { writeAll, writeFileAtomic } from './atomic.ts';
import type { SigningKey } from './keys.ts';
import { readApkHead } from './reader.ts';
import { buildSignatureStream } from './signature.ts';

export async function resignApk(path: string, key: SigningKey): Promise<void> {
  const head = await readApkHead(path);
  const controlStart = head.dataOffset - head.controlCompressed.length;
  const signature = buildSignatureStream(key, head.controlCompressed, head.info.builddate ?? 0);
  const { mode } = await stat(path);
  await writeFileAtomic(
    path,
    async (fh) => {
      await writeAll(fh, signature);
      for await (const chunk of createReadStream(path, { start: controlStart })) await writeAll(fh, chunk as Buffer);
    },
    { mode: mode & 0o777, overwrite: true, sync: true },
  );
}
