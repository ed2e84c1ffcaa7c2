// Dependency scanning ("SCA"): what each package of one build provides and needs at run time, from its
// file tree. Runs over all packages of a build together, because a library or `.pc` file in one subpackage
// satisfies the needs of its siblings.
//
// Rules (per package; all generated entries are merged with the recipe's declared ones):
// - provides `so:<soname>=<libver>` for shared libraries directly in lib, usr/lib, lib64, usr/lib64;
// - provides `cmd:<name>=<ver>-r<N>` for executables directly in bin, sbin, usr/bin, usr/sbin;
// - provides `pc:<module>=<version>` for `.pc` files in a `pkgconfig` directory, depends on their Requires
//   (and Requires.private, which pkg-config also insists on finding);
// - depends `so:<lib>` for each DT_NEEDED library and on the ELF interpreter (`ld-musl-*` → `libc.musl-*`),
//   unless the package itself contains it; a library only a sibling has outside the standard directories,
//   or a sibling that provides nothing automatically, is depended on by package name instead;
// - depends `cmd:<interpreter>` for scripts' `#!` lines (following `/usr/bin/env`; `sh` is taken as given);
// - `.so` symlinks whose target is not in the package (the `-dev` symlink) depend on whatever provides the
//   target in a sibling;
// - `no-depends` / `no-provides` / `no-commands` drop generated depends / provides / cmd: provides;
// - one entry per name (declared wins), sorted; a dependency the package provides itself is dropped.
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { ElfInfo } from '../../elf/reader.ts';
import { errorMessage } from '../../errors.ts';
import { apkVersionFromPc, dependencyName, mergeByName, pcDependency, sharedLibraryVersion } from './deps.ts';
import { inspectFile } from './inspect.ts';
import { mapLimit } from './limit.ts';
import { parsePcFile, type PcRequirement } from './pkgconfig.ts';
import { isDirectlyIn, linkTargetPath, type PackageTree, readTreeFromDir, resolveInTree, type TreeEntry } from './tree.ts';

export const LIBRARY_DIRS: readonly string[] = ['lib', 'usr/lib', 'lib64', 'usr/lib64'];
export const COMMAND_DIRS: readonly string[] = ['bin', 'sbin', 'usr/bin', 'usr/sbin'];
/** Interpreters every root has; depending on them only adds noise. */
const IGNORED_INTERPRETERS: ReadonlySet<string> = new Set(['sh']);
const FILE_CONCURRENCY = 16;

export interface ScanOptions {
  noProvides: boolean;
  noDepends: boolean;
  noCommands: boolean;
}

export interface ScanPackageInput {
  name: string;
  /** Full version, `<version>-r<epoch>`. */
  version: string;
  /** The package's file tree on disk. */
  dir: string;
  options: ScanOptions;
  declared: { runtime: string[]; provides: string[] };
}

export interface ScanResult {
  /** Declared plus generated runtime dependencies: sorted, one per name, none the package provides. */
  depend: string[];
  /** Declared plus generated provides: sorted, one per name. */
  provides: string[];
  /** Files skipped (corrupt ELF, unreadable, broken links) and similar: worth showing, never fatal. */
  warnings: string[];
}

export interface ScanTreeInput extends Omit<ScanPackageInput, 'dir'> {
  tree: PackageTree;
}

/** Scans the packages of one build (main package and subpackages) from their directories. */
export async function scanPackages(input: { packages: ScanPackageInput[] }): Promise<Map<string, ScanResult>> {
  const trees: ScanTreeInput[] = [];
  for (const p of input.packages) {
    const { dir, ...rest } = p;
    trees.push({ ...rest, tree: await readTreeFromDir(dir) });
  }
  return scanTrees(trees);
}

interface Facts {
  input: ScanTreeInput;
  /** soname → version, for libraries in the standard directories. */
  soProvides: Map<string, string>;
  /** Every library name the package contains anywhere (SONAMEs and `*.so*` file names). */
  libraryNames: Set<string>;
  /** Commands in the standard command directories (whatever no-commands says). */
  commands: Set<string>;
  /** ELF headers by path. */
  elves: Map<string, ElfInfo>;
  needed: Map<string, string>;
  interpreters: Map<string, string>;
  scriptInterpreters: Map<string, { command: string; path: string; file: string }>;
  pcProvides: Map<string, string>;
  pcRequires: { req: PcRequirement; file: string }[];
  /** `.so` symlinks whose target is not in this package: link path → target path. */
  foreignLinks: { path: string; target: string }[];
  warnings: string[];
}

/** Scans packages whose trees are already read (from directories or from .apk files). */
export async function scanTrees(packages: ScanTreeInput[]): Promise<Map<string, ScanResult>> {
  const facts: Facts[] = [];
  for (const p of packages) facts.push(await gatherFacts(p));
  const out = new Map<string, ScanResult>();
  for (const f of facts) out.set(f.input.name, resolve(f, facts.filter((s) => s !== f)));
  return out;
}

function isLibraryName(name: string): boolean {
  return /\.so(\.|$)/.test(name);
}

function isElfCandidate(e: TreeEntry): boolean {
  return e.type === 'file' && e.readable && ((e.mode & 0o111) !== 0 || posix.basename(e.path).includes('.so'));
}

function isPcFile(e: TreeEntry): boolean {
  return e.path.endsWith('.pc') && posix.basename(posix.dirname(e.path)) === 'pkgconfig';
}

/** `ld-musl-x86_64.so.1` is a symlink-equivalent of `libc.musl-x86_64.so.1`, which is what gets provided. */
export function interpreterDependency(interp: string): string {
  return posix.basename(interp).replace(/^ld-musl-/, 'libc.musl-');
}

async function gatherFacts(input: ScanTreeInput): Promise<Facts> {
  const { tree } = input;
  const f: Facts = {
    input,
    soProvides: new Map(),
    libraryNames: new Set(),
    commands: new Set(),
    elves: new Map(),
    needed: new Map(),
    interpreters: new Map(),
    scriptInterpreters: new Map(),
    pcProvides: new Map(),
    pcRequires: [],
    foreignLinks: [],
    warnings: [...tree.warnings],
  };

  const candidates = tree.entries.filter(isElfCandidate);
  const kinds = await mapLimit(candidates, FILE_CONCURRENCY, (e) => inspectFile(tree, e));
  candidates.forEach((entry, i) => {
    const k = kinds[i];
    if (!k) return;
    const base = posix.basename(entry.path);
    if (isLibraryName(base)) f.libraryNames.add(base);
    if (k.kind === 'error') f.warnings.push(k.message);
    else if (k.kind === 'elf') {
      const elf = k.elf;
      f.elves.set(entry.path, elf);
      if (elf.type !== 'executable' && elf.type !== 'shared') return;
      for (const lib of elf.needed) if (!f.needed.has(lib)) f.needed.set(lib, entry.path);
      if (elf.interpreter !== null && !f.interpreters.has(elf.interpreter)) f.interpreters.set(elf.interpreter, entry.path);
      // A PIE executable with a SONAME (some toolchains set one) is still a program, not a library.
      if (elf.soname !== null && elf.type === 'shared' && !elf.pie) {
        f.libraryNames.add(elf.soname);
        if (isDirectlyIn(entry.path, LIBRARY_DIRS) && !f.soProvides.has(elf.soname)) {
          f.soProvides.set(elf.soname, sharedLibraryVersion(base, elf.soname));
        }
      }
    } else if (k.kind === 'script' && (entry.mode & 0o111) !== 0) {
      const sb = k.shebang;
      if (sb.kind === 'invalid') f.warnings.push(`${entry.path}: ${sb.reason}`);
      else if (!IGNORED_INTERPRETERS.has(sb.command) && !f.scriptInterpreters.has(sb.command)) {
        f.scriptInterpreters.set(sb.command, { command: sb.command, path: sb.path, file: entry.path });
      }
    }
  });

  for (const e of tree.entries) {
    const base = posix.basename(e.path);
    if (e.type === 'symlink' && isLibraryName(base)) {
      f.libraryNames.add(base);
      if (resolveInTree(tree, e.path) === null) {
        const target = linkTargetPath(e);
        if (target !== null) f.foreignLinks.push({ path: e.path, target });
      }
    }
    if (isDirectlyIn(e.path, COMMAND_DIRS) && (e.type === 'file' || e.type === 'symlink')) {
      const real = e.type === 'symlink' ? resolveInTree(tree, e.path) : e;
      if (real === null) f.warnings.push(`${e.path}: broken symlink to ${e.linkTarget ?? '?'}; not provided as a command`);
      else if (real.type === 'file' && (real.mode & 0o111) !== 0) f.commands.add(base);
    }
  }

  const pcFiles = tree.entries.filter((e) => e.type === 'file' && e.readable && isPcFile(e));
  const pcTexts = await mapLimit(pcFiles, FILE_CONCURRENCY, async (e) => {
    try {
      return await readFile(join(tree.root, e.path), 'utf8');
    } catch (err) {
      return new Error(`${e.path}: cannot read (${errorMessage(err)})`);
    }
  });
  pcFiles.forEach((e, i) => {
    const text = pcTexts[i];
    if (text === undefined) return;
    if (text instanceof Error) {
      f.warnings.push(text.message);
      return;
    }
    const module = posix.basename(e.path).slice(0, -'.pc'.length);
    const pc = parsePcFile(text, `/${posix.dirname(e.path)}`);
    for (const p of pc.problems) f.warnings.push(`${e.path}: ${p}`);
    let version = pc.version === undefined ? null : apkVersionFromPc(pc.version);
    if (version === null) {
      version = input.version.replace(/-r\d+$/, '');
      f.warnings.push(
        `${e.path}: ${pc.version === undefined ? 'no Version' : `Version "${pc.version}" is not an apk version`}; pc:${module} uses the package version ${version}`,
      );
    }
    f.pcProvides.set(module, version);
    for (const req of [...pc.requires, ...pc.requiresPrivate]) f.pcRequires.push({ req, file: e.path });
  });
  return f;
}

function exactDependency(sibling: Facts): string {
  return `${sibling.input.name}=${sibling.input.version}`;
}

function resolve(f: Facts, siblings: Facts[]): ScanResult {
  const { input } = f;
  const depends: string[] = [];
  const provides: string[] = [];
  const warnings = [...f.warnings];

  if (!input.options.noProvides) {
    for (const [soname, ver] of f.soProvides) provides.push(`so:${soname}=${ver}`);
    for (const [module, ver] of f.pcProvides) provides.push(`pc:${module}=${ver}`);
    if (!input.options.noCommands) for (const cmd of f.commands) provides.push(`cmd:${cmd}=${input.version}`);
  }

  if (!input.options.noDepends) {
    const library = (lib: string): string | null => {
      if (f.libraryNames.has(lib)) return null;
      for (const s of siblings) {
        if (s.soProvides.has(lib)) return s.input.options.noProvides ? exactDependency(s) : `so:${lib}`;
      }
      // Only in a sibling's private directory: nothing provides `so:` for it, the sibling itself does.
      for (const s of siblings) if (s.libraryNames.has(lib)) return exactDependency(s);
      return `so:${lib}`;
    };
    for (const lib of f.needed.keys()) {
      const d = library(lib);
      if (d !== null) depends.push(d);
    }
    for (const interp of f.interpreters.keys()) {
      const name = interpreterDependency(interp);
      if (f.libraryNames.has(posix.basename(interp))) continue;
      const d = library(name);
      if (d !== null) depends.push(d);
    }
    for (const { command, path } of f.scriptInterpreters.values()) {
      if (f.commands.has(command)) continue;
      if (path.startsWith('/') && resolveInTree(input.tree, path) !== null) continue;
      const s = siblings.find((x) => x.commands.has(command));
      depends.push(s && (s.input.options.noProvides || s.input.options.noCommands) ? exactDependency(s) : `cmd:${command}`);
    }
    for (const { req } of f.pcRequires) {
      if (f.pcProvides.has(req.module)) continue;
      const s = siblings.find((x) => x.pcProvides.has(req.module));
      depends.push(s?.input.options.noProvides ? exactDependency(s) : pcDependency(req.module, req.op, req.version));
    }
    for (const link of f.foreignLinks) {
      const d = foreignLinkDependency(link, siblings);
      if (d === null) warnings.push(`${link.path}: symlink to ${link.target}, which no package of this build contains`);
      else depends.push(d);
    }
  }

  const allProvides = mergeByName(input.declared.provides, provides);
  const provided = new Set(allProvides.map(dependencyName));
  provided.add(input.name);
  const depend = mergeByName(input.declared.runtime, depends).filter((d) => !provided.has(dependencyName(d)));
  return { depend, provides: allProvides, warnings };
}

/** What a `.so` symlink into another package needs: the sibling's library, or the sibling itself. */
function foreignLinkDependency(link: { path: string; target: string }, siblings: Facts[]): string | null {
  for (const s of siblings) {
    const real = resolveInTree(s.input.tree, link.target);
    if (real === null) continue;
    const elf = s.elves.get(real.path);
    const soname = elf?.soname ?? null;
    if (soname !== null && s.soProvides.has(soname) && !s.input.options.noProvides) return `so:${soname}`;
    return exactDependency(s);
  }
  const base = posix.basename(link.target);
  // Not built here: a versioned library name is still a dependency another package can satisfy.
  return /\.so\.\d/.test(base) ? `so:${base}` : null;
}
