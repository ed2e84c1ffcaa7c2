// Script interpreters from `#!` lines. The kernel reads at most the first 256 bytes (BINPRM_BUF_SIZE), so
// that is all we read too.
import { open } from 'node:fs/promises';
import { posix } from 'node:path';

export const SHEBANG_BYTES = 256;

export type Shebang =
  | { kind: 'interpreter'; /** As written (`/usr/bin/python3`). */ path: string; /** The command name (`python3`). */ command: string }
  | { kind: 'invalid'; reason: string };

/** The interpreter named by a script's first line, following `/usr/bin/env`; null when there is no `#!`. */
export function parseShebang(head: Buffer): Shebang | null {
  if (head.length < 2 || head[0] !== 0x23 || head[1] !== 0x21) return null;
  const nl = head.indexOf(0x0a);
  const line = head.toString('utf8', 2, nl < 0 ? head.length : nl).replace(/\r$/, '');
  const words = line.trim().split(/[ \t]+/).filter((w) => w !== '');
  const interp = words[0];
  if (interp === undefined) return { kind: 'invalid', reason: 'empty #! line' };
  if (posix.basename(interp) !== 'env') return { kind: 'interpreter', path: interp, command: posix.basename(interp) };
  // env [-i] [-u NAME] [-S] [NAME=VALUE]... COMMAND [ARG]...
  for (let i = 1; i < words.length; i++) {
    const w = words[i] as string;
    if (w === '-u' || w === '--unset' || w === '-C' || w === '--chdir') {
      i++;
      continue;
    }
    if (w.startsWith('-S') && w.length > 2) return { kind: 'interpreter', path: w.slice(2), command: posix.basename(w.slice(2)) };
    if (w.startsWith('-') || /^[A-Za-z_][A-Za-z0-9_]*=/.test(w)) continue;
    return { kind: 'interpreter', path: w, command: posix.basename(w) };
  }
  return { kind: 'invalid', reason: `"#!${line.trim()}" names no command after env` };
}

/** The first bytes of a file (up to SHEBANG_BYTES). */
export async function readHead(path: string, bytes = SHEBANG_BYTES): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
