import { readApkData, readApkHead } from '../../src/apk/reader.ts';

/** The text of one data file of a built package ('' when absent). */
export async function fileFromApk(apk: string, name: string): Promise<string> {
  let text = '';
  await readApkData(apk, await readApkHead(apk), {
    onEntry: async (entry, content) => {
      const chunks: Buffer[] = [];
      for await (const c of content) chunks.push(c);
      if (entry.name === name) text = Buffer.concat(chunks).toString('utf8');
    },
  });
  return text;
}
