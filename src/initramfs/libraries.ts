// Which files an ELF program needs from an unpacked tree to run there: its program interpreter and the
// transitive closure of its DT_NEEDED libraries, found the way the dynamic loader would (RPATH/RUNPATH, then
// the multiarch and plain library directories). We read the headers ourselves instead of running `ldd`, which
// would execute the program and consult the host's libraries instead of the tree's.
import { join, posix } from 'node:path';
import { hostNode } from '../archive/safe-extract.ts';
import { type ElfInfo, readElf } from '../elf/reader.ts';
import { BuilderError } from '../errors.ts';
import { resolveInRoot } from '../paths/in-root.ts';

/** Debian's multiarch directory names, by ELF machine name. */
const MULTIARCH: Record<string, string> = {
  x86_64: 'x86_64-linux-gnu',
  aarch64: 'aarch64-linux-gnu',
  i386: 'i386-linux-gnu',
  arm: 'arm-linux-gnueabihf',
  riscv: 'riscv64-linux-gnu',
  ppc64: 'powerpc64le-linux-gnu',
  s390: 's390x-linux-gnu',
};

export interface LibraryClosure {
  /** Paths relative to the tree, including every symlink on the way to each file. */
  paths: string[];
}

/** A required library that the tree does not have. */
export class MissingLibraryError extends BuilderError {
  override name = 'MissingLibraryError';
}

/**
 * Resolves a path inside `tree` the way the guest would see it (absolute symlinks are relative to the tree),
 * recording each symlink passed through. Returns null when it does not exist.
 */
export async function resolveInTree(tree: string, path: string, visited: Set<string>): Promise<string | null> {
  const result = resolveInRoot(path, (rel) => hostNode(tree, rel), { onLink: (rel) => visited.add(rel) });
  return result.ok ? result.rel : null;
}

function searchDirs(elf: ElfInfo, origin: string): string[] {
  const expand = (dir: string) => dir.replaceAll('$ORIGIN', origin).replaceAll('${ORIGIN}', origin);
  const triplet = MULTIARCH[elf.machineName];
  const multiarch = triplet ? [`/lib/${triplet}`, `/usr/lib/${triplet}`] : [];
  const wide = elf.bits === 64 ? ['/lib64', '/usr/lib64'] : ['/lib32', '/usr/lib32'];
  // DT_RPATH is only honoured when there is no DT_RUNPATH, as in glibc.
  const own = elf.runpath.length > 0 ? elf.runpath : elf.rpath;
  return [...own.map(expand), ...multiarch, ...wide, '/lib', '/usr/lib'];
}

/**
 * Everything `programs` (paths relative to `tree`) need to run: interpreters, libraries and the symlinks
 * leading to them. Libraries of another class or machine than the program are skipped, as the loader does.
 */
export async function libraryClosure(tree: string, programs: string[]): Promise<LibraryClosure> {
  const found = new Set<string>();
  const queue: { path: string; elf: ElfInfo }[] = [];
  const seenFiles = new Set<string>();

  /** Records a file and the symlinks leading to it; false when it does not exist in the tree. */
  const add = async (relPath: string, requiredBy: string): Promise<boolean> => {
    const visited = new Set<string>();
    const real = await resolveInTree(tree, relPath, visited);
    if (real === null) return false;
    for (const v of visited) found.add(v);
    found.add(real);
    if (seenFiles.has(real)) return true;
    seenFiles.add(real);
    const elf = await readElf(join(tree, real));
    if (elf === null) throw new BuilderError(`${requiredBy}: ${relPath} is not an ELF file`);
    queue.push({ path: real, elf });
    return true;
  };

  for (const program of programs) {
    const elf = await readElf(join(tree, program));
    if (elf === null) continue;
    seenFiles.add(program);
    found.add(program);
    queue.push({ path: program, elf });
  }

  while (queue.length > 0) {
    const { path, elf } = queue.shift()!;
    if (elf.interpreter && !(await add(elf.interpreter, path))) {
      throw new MissingLibraryError(`${path}: program interpreter ${elf.interpreter} is not in the tree`);
    }
    const origin = `/${posix.dirname(path)}`;
    for (const soname of elf.needed) {
      let located = false;
      for (const dir of searchDirs(elf, origin)) {
        const candidate = posix.join(dir, soname);
        const visited = new Set<string>();
        const real = await resolveInTree(tree, candidate, visited);
        if (real === null) continue;
        const lib = await readElf(join(tree, real));
        if (lib === null || lib.bits !== elf.bits || lib.machine !== elf.machine) continue;
        await add(candidate, path);
        located = true;
        break;
      }
      if (!located) {
        throw new MissingLibraryError(`${path} needs ${soname}, which is not in the tree (searched ${searchDirs(elf, origin).join(', ')})`);
      }
    }
  }
  return { paths: [...found].sort() };
}
