// The package linters: each looks at a package's file tree and reports what a maintainer would want to
// know before publishing. A linter only finds; whether a finding fails the build is its severity's business
// (see settings.ts).
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { ElfInfo } from '../elf/reader.ts';
import { inspectFile } from '../apk/sca/inspect.ts';
import { mapLimit } from '../apk/sca/limit.ts';
import { parsePcFile } from '../apk/sca/pkgconfig.ts';
import { contentSha1, isUnder, type PackageTree, type TreeEntry } from '../apk/sca/tree.ts';
import { errorMessage } from '../errors.ts';

export type Severity = 'error' | 'warning';

export interface LintFinding {
  /** Path inside the package, when the finding is about one. */
  path?: string;
  message: string;
}

export interface LintContext {
  tree: PackageTree;
  packageName: string;
  arch: string;
  /** ELF headers (with section names) of the package's ELF files, read once and shared by linters. */
  elfFiles(): Promise<Map<string, ElfInfo>>;
}

export interface Linter {
  name: string;
  description: string;
  defaultSeverity: Severity;
  check(ctx: LintContext): Promise<LintFinding[]> | LintFinding[];
}

const SBOM_DIR = 'var/lib/db/sbom';

/** Findings for every entry (the directory itself included) under one of `dirs`. */
function entriesUnder(ctx: LintContext, dirs: readonly string[], message: (e: TreeEntry, dir: string) => string): LintFinding[] {
  const out: LintFinding[] = [];
  for (const e of ctx.tree.entries) {
    const dir = dirs.find((d) => isUnder(e.path, d));
    if (dir !== undefined) out.push({ path: e.path, message: message(e, dir) });
  }
  return out;
}

function regularFiles(ctx: LintContext): TreeEntry[] {
  return ctx.tree.entries.filter((e) => e.type === 'file');
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/** ELF machine numbers of each apk architecture (and the word size, where one machine covers two). */
const ARCH_MACHINES: Readonly<Record<string, { machine: number; bits?: 32 | 64 }>> = {
  x86_64: { machine: 62, bits: 64 },
  x86: { machine: 3 },
  aarch64: { machine: 183, bits: 64 },
  armhf: { machine: 40 },
  armv7: { machine: 40 },
  ppc64le: { machine: 21, bits: 64 },
  s390x: { machine: 22, bits: 64 },
  riscv64: { machine: 243, bits: 64 },
  loongarch64: { machine: 258, bits: 64 },
  mips64: { machine: 8, bits: 64 },
};
/** eBPF objects are loaded into the kernel, not run by the CPU: any architecture ships them. */
const EM_BPF = 247;
const FIRMWARE_DIRS = ['lib/firmware', 'usr/lib/firmware'];

export const LINTERS: readonly Linter[] = [
  {
    name: 'dev',
    description: 'files in /dev (device nodes come from the running system, not packages)',
    defaultSeverity: 'error',
    check: (ctx) => entriesUnder(ctx, ['dev'], () => 'package writes to /dev'),
  },
  {
    name: 'setuidgid',
    description: 'setuid or setgid files',
    defaultSeverity: 'error',
    check: (ctx) =>
      regularFiles(ctx)
        .filter((e) => (e.mode & 0o6000) !== 0)
        .map((e) => ({
          path: e.path,
          message: `${(e.mode & 0o4000) !== 0 ? 'setuid' : 'setgid'} file (mode ${octal(e.mode)}); grant capabilities with setcap instead`,
        })),
  },
  {
    name: 'tempdir',
    description: 'files in temporary directories (/tmp, /var/tmp, /run)',
    defaultSeverity: 'error',
    check: (ctx) => entriesUnder(ctx, ['tmp', 'var/tmp', 'run'], (_e, dir) => `package writes to /${dir}, which is emptied at boot`),
  },
  {
    name: 'varempty',
    description: 'files in /var/empty (which must stay empty)',
    defaultSeverity: 'error',
    check: (ctx) =>
      ctx.tree.entries
        .filter((e) => isUnder(e.path, 'var/empty') && e.path !== 'var/empty')
        .map((e) => ({ path: e.path, message: '/var/empty must stay empty' })),
  },
  {
    name: 'worldwrite',
    description: 'world-writable files and world-writable directories without the sticky bit',
    defaultSeverity: 'error',
    check: (ctx) =>
      ctx.tree.entries
        .filter((e) => (e.mode & 0o002) !== 0 && (e.type === 'file' || (e.type === 'directory' && (e.mode & 0o1000) === 0)))
        .map((e) => ({ path: e.path, message: `world-writable ${e.type === 'file' ? 'file' : 'directory without the sticky bit'} (mode ${octal(e.mode)})` })),
  },
  {
    name: 'infodir',
    description: 'the generated info index usr/share/info/dir (install-info maintains it on the target)',
    defaultSeverity: 'error',
    check: (ctx) =>
      ctx.tree.byPath.has('usr/share/info/dir')
        ? [{ path: 'usr/share/info/dir', message: 'info index file; remove it (every package shipping one conflicts)' }]
        : [],
  },
  {
    name: 'usrmerge',
    description: 'files in /bin, /sbin, /lib, /lib64, /usr/sbin or /usr/lib64 instead of /usr/bin and /usr/lib',
    defaultSeverity: 'error',
    check: (ctx) => {
      const merged = ['bin', 'sbin', 'lib', 'lib64', 'usr/sbin', 'usr/lib64'];
      const out: LintFinding[] = [];
      for (const e of ctx.tree.entries) {
        const dir = merged.find((d) => isUnder(e.path, d));
        if (dir === undefined) continue;
        // The merged layout itself (`/bin -> usr/bin`) is what the linter asks for.
        if (e.path === dir && e.type === 'symlink') continue;
        const to = dir.endsWith('bin') ? 'usr/bin' : 'usr/lib';
        out.push({ path: e.path, message: `/${dir} is merged into /${to}; install there instead` });
      }
      return out;
    },
  },
  {
    name: 'libtool',
    description: 'libtool archives (.la files)',
    defaultSeverity: 'error',
    check: (ctx) =>
      regularFiles(ctx)
        .filter((e) => e.path.endsWith('.la'))
        .map((e) => ({ path: e.path, message: 'libtool archive; remove it (it leaks build paths and breaks static linking)' })),
  },
  {
    name: 'opt',
    description: 'files in /opt',
    defaultSeverity: 'warning',
    check: (ctx) => entriesUnder(ctx, ['opt'], () => 'package writes to /opt'),
  },
  {
    name: 'srv',
    description: 'files in /srv',
    defaultSeverity: 'warning',
    check: (ctx) => entriesUnder(ctx, ['srv'], () => 'package writes to /srv, which belongs to the administrator'),
  },
  {
    name: 'usrlocal',
    description: 'files in /usr/local',
    defaultSeverity: 'warning',
    check: (ctx) => entriesUnder(ctx, ['usr/local'], () => 'package writes to /usr/local, which belongs to the administrator'),
  },
  {
    name: 'object',
    description: 'intermediate object files (.o)',
    defaultSeverity: 'warning',
    check: (ctx) =>
      regularFiles(ctx)
        .filter((e) => e.path.endsWith('.o'))
        .map((e) => ({ path: e.path, message: 'intermediate object file' })),
  },
  {
    name: 'maninfo',
    description: 'man or info pages outside a -doc package',
    defaultSeverity: 'warning',
    check: (ctx) =>
      ctx.packageName.endsWith('-doc')
        ? []
        : ctx.tree.entries
            .filter((e) => e.type !== 'directory' && (isUnder(e.path, 'usr/share/man') || isUnder(e.path, 'usr/share/info')))
            .map((e) => ({ path: e.path, message: 'documentation belongs in a -doc subpackage' })),
  },
  {
    name: 'strip',
    description: 'ELF binaries that are not stripped (debug sections)',
    defaultSeverity: 'warning',
    // As melange's: executables and libraries (an x bit, or a .a/.so/.dylib extension) with `.debug*` or
    // `.zdebug*` sections. `.symtab` alone is what `strip -g` keeps, and is not flagged. Unlike melange,
    // the split-off debug files under usr/lib/debug are never flagged: debug sections are their point.
    check: async (ctx) => {
      const entries = new Map(ctx.tree.entries.map((e) => [e.path, e]));
      const out: LintFinding[] = [];
      for (const [path, elf] of await ctx.elfFiles()) {
        const entry = entries.get(path);
        if (entry === undefined || entry.type !== 'file' || isUnder(path, SBOM_DIR) || isUnder(path, 'usr/lib/debug')) continue;
        if ((entry.mode & 0o111) === 0 && !['.a', '.so', '.dylib'].includes(posix.extname(path))) continue;
        const debug = (elf.sections ?? []).map((s) => s.name).filter((n) => n.startsWith('.debug') || n.startsWith('.zdebug'));
        if (debug.length > 0) out.push({ path, message: `not stripped (has ${debug.slice(0, 3).join(', ')}${debug.length > 3 ? ', ...' : ''})` });
      }
      return out;
    },
  },
  {
    name: 'staticarchive',
    description: 'static libraries (.a) outside a -static package',
    defaultSeverity: 'warning',
    check: (ctx) =>
      ctx.packageName.endsWith('-static')
        ? []
        : regularFiles(ctx)
            .filter((e) => e.path.endsWith('.a'))
            .map((e) => ({ path: e.path, message: 'static archive; move it to a -static subpackage' })),
  },
  {
    name: 'empty',
    description: 'packages without any file',
    defaultSeverity: 'warning',
    check: (ctx) => {
      // The SBOM every package carries does not make it any less empty.
      const content = ctx.tree.entries.some((e) => e.type !== 'directory' && !isUnder(e.path, SBOM_DIR));
      return content ? [] : [{ message: 'package contains no files' }];
    },
  },
  {
    name: 'duplicate',
    description: 'identical files at several paths (hard or symbolic links would do)',
    defaultSeverity: 'warning',
    check: async (ctx) => {
      const bySize = new Map<number, TreeEntry[]>();
      for (const e of regularFiles(ctx)) {
        if (e.size === 0 || e.hardlinkTo !== undefined) continue;
        bySize.set(e.size, [...(bySize.get(e.size) ?? []), e]);
      }
      const candidates = [...bySize.values()].filter((g) => g.length > 1).flat();
      const hashes = await mapLimit(candidates, 8, (e) => contentSha1(ctx.tree, e).catch(() => null));
      const byHash = new Map<string, string[]>();
      candidates.forEach((e, i) => {
        const h = hashes[i];
        if (h) byHash.set(`${e.size}:${h}`, [...(byHash.get(`${e.size}:${h}`) ?? []), e.path]);
      });
      const out: LintFinding[] = [];
      for (const paths of byHash.values()) {
        if (paths.length < 2) continue;
        paths.sort();
        const [first, ...rest] = paths;
        for (const p of rest) out.push({ path: p, message: `same content as ${first ?? ''}` });
      }
      return out;
    },
  },
  {
    name: 'pkgconf',
    description: 'pkg-config files outside a -dev package, or missing required fields',
    defaultSeverity: 'warning',
    check: async (ctx) => {
      const out: LintFinding[] = [];
      const pcs = regularFiles(ctx).filter((e) => e.path.endsWith('.pc') && posix.basename(posix.dirname(e.path)) === 'pkgconfig');
      for (const e of pcs) {
        if (!ctx.packageName.endsWith('-dev')) out.push({ path: e.path, message: 'pkg-config file belongs in a -dev subpackage' });
        if (!e.readable) continue;
        let text: string;
        try {
          text = await readFile(join(ctx.tree.root, e.path), 'utf8');
        } catch (err) {
          out.push({ path: e.path, message: `cannot read (${errorMessage(err)})` });
          continue;
        }
        const pc = parsePcFile(text, `/${posix.dirname(e.path)}`);
        const missing = (['Name', 'Description', 'Version'] as const).filter((f) =>
          f === 'Name' ? pc.name === undefined : f === 'Version' ? pc.version === undefined : !/^\s*Description\s*:/im.test(text),
        );
        if (missing.length > 0) out.push({ path: e.path, message: `missing ${missing.join(', ')} (pkg-config refuses the file)` });
        for (const p of pc.problems) out.push({ path: e.path, message: p });
      }
      return out;
    },
  },
  {
    name: 'binaryarch',
    description: "ELF files for another architecture than the package's",
    defaultSeverity: 'warning',
    check: async (ctx) => {
      const out: LintFinding[] = [];
      const want = ARCH_MACHINES[ctx.arch];
      const noarch = ctx.arch === 'noarch' || ctx.arch === 'all';
      if (!want && !noarch) return out;
      for (const [path, elf] of await ctx.elfFiles()) {
        if (FIRMWARE_DIRS.some((d) => isUnder(path, d)) || elf.machine === EM_BPF) continue;
        const what = `${elf.machineName} (${elf.bits}-bit)`;
        if (noarch) out.push({ path, message: `${what} ELF file in a ${ctx.arch} package` });
        else if (want && (elf.machine !== want.machine || (want.bits !== undefined && elf.bits !== want.bits))) {
          out.push({ path, message: `${what} ELF file in a ${ctx.arch} package` });
        }
      }
      return out;
    },
  },
];

export const LINTER_NAMES: readonly string[] = LINTERS.map((l) => l.name);

/**
 * melange's linters (pkg/linter) that builder does not implement: a recipe's `checks` may name them; the
 * compiler reports each once as not implemented, and linting skips them.
 */
export const UNIMPLEMENTED_LINTERS: readonly string[] = [
  'cudaruntimelib',
  'dll',
  'documentation',
  'dylib',
  'lddcheck',
  'noarch',
  'nonlinux',
  'python/docs',
  'python/multiple',
  'python/test',
  'sbom',
  'unsupportedarch',
];

/** Other names recipes use for the same linters. */
export const LINTER_ALIASES: Readonly<Record<string, string>> = { 'la-files': 'libtool', lafiles: 'libtool' };

export function findLinter(name: string): Linter | undefined {
  const canonical = LINTER_ALIASES[name] ?? name;
  return LINTERS.find((l) => l.name === canonical);
}

/** Files worth opening to see whether they are ELF: executables, shared objects, Node addons, kernel modules. */
function mayBeElf(e: TreeEntry): boolean {
  const base = posix.basename(e.path);
  return (e.mode & 0o111) !== 0 || base.includes('.so') || base.endsWith('.node') || base.endsWith('.ko');
}

/** The package's ELF files (with section names), and the files that looked like ELF but are broken. */
export async function readElfFiles(tree: PackageTree): Promise<{ elves: Map<string, ElfInfo>; problems: string[] }> {
  const candidates = tree.entries.filter((e) => e.type === 'file' && e.readable && e.hardlinkTo === undefined && mayBeElf(e));
  const kinds = await mapLimit(candidates, 16, (e) => inspectFile(tree, e, { sections: true }));
  const elves = new Map<string, ElfInfo>();
  const problems: string[] = [];
  candidates.forEach((e, i) => {
    const k = kinds[i];
    if (k?.kind === 'elf') elves.set(e.path, k.elf);
    else if (k?.kind === 'error') problems.push(k.message);
  });
  return { elves, problems };
}
