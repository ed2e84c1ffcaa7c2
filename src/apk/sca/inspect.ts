// What a file in a package tree is, as far as dependency scanning and linting care: an ELF object (with its
// headers), a script (with its interpreter), or something else. One open per file; ELF files are read
// through the handle at the offsets their headers name.
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { type ElfInfo, ElfFormatError, readElfFromHandle } from '../../elf/reader.ts';
import { errorMessage } from '../../errors.ts';
import { parseShebang, SHEBANG_BYTES, type Shebang } from './shebang.ts';
import type { PackageTree, TreeEntry } from './tree.ts';

export type FileKind =
  | { kind: 'elf'; elf: ElfInfo }
  | { kind: 'script'; shebang: Shebang }
  | { kind: 'other' }
  /** Unreadable, or ELF with broken headers: the message names the file and the problem. */
  | { kind: 'error'; message: string };

export async function inspectFile(tree: PackageTree, entry: TreeEntry, options: { sections?: boolean } = {}): Promise<FileKind> {
  if (entry.type !== 'file' || !entry.readable) return { kind: 'other' };
  let fh;
  try {
    fh = await open(join(tree.root, entry.path), 'r');
  } catch (err) {
    return { kind: 'error', message: `${entry.path}: cannot read (${errorMessage(err)})` };
  }
  try {
    const head = Buffer.alloc(SHEBANG_BYTES);
    const { bytesRead } = await fh.read(head, 0, SHEBANG_BYTES, 0);
    const bytes = head.subarray(0, bytesRead);
    if (bytesRead >= 4 && bytes.readUInt32BE(0) === 0x7f454c46) {
      const elf = await readElfFromHandle(fh, entry.path, options);
      return elf ? { kind: 'elf', elf } : { kind: 'other' };
    }
    const shebang = parseShebang(bytes);
    return shebang ? { kind: 'script', shebang } : { kind: 'other' };
  } catch (err) {
    if (err instanceof ElfFormatError) return { kind: 'error', message: `${err.message}; skipped` };
    return { kind: 'error', message: `${entry.path}: cannot read (${errorMessage(err)})` };
  } finally {
    await fh.close();
  }
}
