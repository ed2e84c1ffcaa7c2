// Reading a built initramfs back in tests: its entries as a map, and symlinks resolved inside it.
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { readCpio } from '../../src/initramfs/cpio.ts';

export interface Listed {
  type: string;
  mode: number;
  link?: string;
  data?: Buffer;
}

/** The archive as a map; file bodies kept only for the names asked for. */
export async function unpack(file: string, keep: (name: string) => boolean): Promise<Map<string, Listed>> {
  const out = new Map<string, Listed>();
  for await (const e of readCpio(createReadStream(file).pipe(createGunzip()))) {
    out.set(e.name, { type: e.type, mode: e.mode, link: e.linkTarget, data: e.type === 'file' && keep(e.name) ? await e.buffer() : undefined });
  }
  return out;
}

/** Follows symlinks inside the archive (absolute targets are relative to its root). */
export function resolveInArchive(entries: Map<string, Listed>, name: string): string | undefined {
  let current = name.replace(/^\/+/, '');
  for (let hops = 0; hops < 20; hops++) {
    const parts = current.split('/');
    let resolved: string[] = [];
    let changed = false;
    for (let i = 0; i < parts.length; i++) {
      const here = [...resolved, parts[i]!].join('/');
      const e = entries.get(here);
      if (e?.type === 'symlink' && e.link !== undefined) {
        const base = e.link.startsWith('/') ? [] : resolved;
        current = [...base, ...e.link.split('/').filter((p) => p !== ''), ...parts.slice(i + 1)].join('/');
        changed = true;
        break;
      }
      resolved = here.split('/');
    }
    if (!changed) return entries.has(current) ? current : undefined;
  }
  return undefined;
}
