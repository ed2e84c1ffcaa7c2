import { chmod, link as hardlink, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { writeApk } from '../../src/apk/writer.ts';
import { registerLintCommand } from '../../src/cli/commands/lint.ts';
import { UsageError } from '../../src/errors.ts';
import { failOnLintErrors, formatLintReport, LintFailedError, lintPackage, type LintReport } from '../../src/lint/lint.ts';
import { LINTER_NAMES, LINTERS } from '../../src/lint/linters.ts';
import { lintResultsFileName, writeLintResults } from '../../src/lint/results.ts';
import { lintSettings, UnknownLinterError } from '../../src/lint/settings.ts';
import { synthElf } from '../elf/synth.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { put } from '../sca/fixtures.ts';

const tempDir = useTempDirs();

type Layout = (dir: string) => Promise<unknown>;

interface Case {
  linter: string;
  /** Package name used (some linters look at it). */
  name?: string;
  arch?: string;
  positive: Layout;
  negative: Layout;
}

async function dir(d: string, rel: string, mode = 0o755): Promise<void> {
  await mkdir(join(d, rel), { recursive: true });
  await chmod(join(d, rel), mode);
}

async function compile(d: string, rel: string, flags: string[]): Promise<void> {
  const src = join(d, '..', `src-${rel.replace(/\//g, '_')}.c`);
  await writeFile(src, 'int main(void) { return 0; }\n');
  await mkdir(join(d, rel, '..'), { recursive: true });
  await execa('cc', [...flags, '-o', join(d, rel), src]);
}

const FULL_PC = 'prefix=/usr\nName: x\nDescription: x lib\nVersion: 1.0\nLibs: -lx\n';

const CASES: Case[] = [
  {
    linter: 'dev',
    positive: (d) => put(d, 'dev/null', ''),
    negative: async (d) => {
      await put(d, 'usr/share/dev/notes', 'x');
      await put(d, 'usr/lib/devices.txt', 'x');
    },
  },
  {
    linter: 'setuidgid',
    positive: async (d) => {
      await put(d, 'usr/bin/su', '#!/bin/sh\n', 0o4755);
      await put(d, 'usr/bin/wall', '#!/bin/sh\n', 0o2755);
    },
    negative: async (d) => {
      await put(d, 'usr/bin/ok', '#!/bin/sh\n', 0o755);
      await dir(d, 'var/mail', 0o2775);
    },
  },
  {
    linter: 'tempdir',
    positive: async (d) => {
      await put(d, 'tmp/x', 'x');
      await put(d, 'var/tmp/y', 'y');
      await put(d, 'run/z.pid', 'z');
    },
    negative: async (d) => {
      await put(d, 'usr/share/tmp/x', 'x');
      await put(d, 'var/tmpfiles/x', 'x');
      await put(d, 'usr/lib/tmpfiles.d/x.conf', 'x');
    },
  },
  {
    linter: 'varempty',
    positive: (d) => put(d, 'var/empty/file', 'x'),
    negative: (d) => dir(d, 'var/empty'),
  },
  {
    linter: 'worldwrite',
    positive: async (d) => {
      await put(d, 'etc/open.conf', 'x', 0o666);
      await dir(d, 'var/spool/open', 0o777);
    },
    negative: async (d) => {
      await put(d, 'etc/closed.conf', 'x', 0o644);
      await dir(d, 'var/spool/sticky', 0o1777);
    },
  },
  {
    linter: 'infodir',
    name: 'x-doc',
    positive: (d) => put(d, 'usr/share/info/dir', 'index'),
    negative: (d) => put(d, 'usr/share/info/x.info.gz', 'info'),
  },
  {
    linter: 'usrmerge',
    positive: async (d) => {
      await put(d, 'bin/ls', '#!/bin/sh\n', 0o755);
      await put(d, 'usr/sbin/daemon', '#!/bin/sh\n', 0o755);
      await put(d, 'lib/libx.so.1', 'x');
    },
    negative: async (d) => {
      await put(d, 'usr/bin/ls', '#!/bin/sh\n', 0o755);
      await symlink('usr/bin', join(d, 'bin'));
      await symlink('usr/lib', join(d, 'lib'));
    },
  },
  {
    linter: 'libtool',
    positive: (d) => put(d, 'usr/lib/libx.la', '# libx.la - a libtool library file\n'),
    negative: async (d) => {
      await put(d, 'usr/lib/libx.so.1', 'x');
      await put(d, 'usr/share/x.lax', 'x');
    },
  },
  {
    linter: 'opt',
    positive: (d) => put(d, 'opt/app/run', 'x'),
    negative: (d) => put(d, 'usr/share/opt/run', 'x'),
  },
  {
    linter: 'srv',
    positive: (d) => put(d, 'srv/www/index.html', 'x'),
    negative: (d) => put(d, 'usr/share/srv/index.html', 'x'),
  },
  {
    linter: 'usrlocal',
    positive: (d) => put(d, 'usr/local/bin/tool', 'x'),
    negative: (d) => put(d, 'usr/localized/tool', 'x'),
  },
  {
    linter: 'object',
    positive: (d) => put(d, 'usr/lib/x/file.o', 'x'),
    negative: async (d) => {
      await put(d, 'usr/lib/x/file.so', 'x');
      await put(d, 'usr/share/x/README.oo', 'x');
    },
  },
  {
    linter: 'maninfo',
    name: 'tool',
    positive: (d) => put(d, 'usr/share/man/man1/tool.1', '.TH TOOL 1'),
    negative: (d) => put(d, 'usr/share/doc/tool/README', 'not a man page'),
  },
  {
    linter: 'strip',
    positive: async (d) => {
      await compile(d, 'usr/bin/debug', ['-g']);
      // A library without an x bit is still looked at, by its extension (as melange does).
      await compile(d, 'usr/lib/libdebug.so', ['-g', '-shared', '-fPIC']);
      await chmod(join(d, 'usr/lib/libdebug.so'), 0o644);
    },
    negative: async (d) => {
      await compile(d, 'usr/bin/stripped', ['-s']);
      // `strip -g` keeps .symtab: melange does not flag that, and neither do we.
      await compile(d, 'usr/bin/symbols', ['-g']);
      await execa('strip', ['-g', join(d, 'usr/bin/symbols')]);
      // Debug sections in a file that is neither executable nor a library, or in a split-off debug file.
      await compile(d, 'usr/share/x/data', ['-g']);
      await chmod(join(d, 'usr/share/x/data'), 0o644);
      await compile(d, 'usr/lib/debug/usr/bin/x.debug', ['-g']);
    },
  },
  {
    linter: 'staticarchive',
    name: 'x-dev',
    positive: (d) => put(d, 'usr/lib/libx.a', '!<arch>\n'),
    negative: (d) => put(d, 'usr/lib/libx.so', 'x'),
  },
  {
    linter: 'empty',
    positive: async (d) => {
      await dir(d, 'usr/share');
      await put(d, 'var/lib/db/sbom/x-1-r0.spdx.json', '{}');
    },
    negative: (d) => put(d, 'usr/share/x', 'x'),
  },
  {
    linter: 'duplicate',
    positive: async (d) => {
      await put(d, 'usr/share/a/LICENSE', 'same text');
      await put(d, 'usr/share/b/LICENSE', 'same text');
    },
    negative: async (d) => {
      await put(d, 'usr/share/a/LICENSE', 'same text');
      await mkdir(join(d, 'usr/share/b'), { recursive: true });
      await hardlink(join(d, 'usr/share/a/LICENSE'), join(d, 'usr/share/b/LICENSE'));
      await put(d, 'usr/share/c/LICENSE', 'diff text');
    },
  },
  {
    linter: 'pkgconf',
    name: 'x-dev',
    positive: (d) => put(d, 'usr/lib/pkgconfig/x.pc', 'Name: x\nLibs: -lx\n'),
    negative: (d) => put(d, 'usr/lib/pkgconfig/x.pc', FULL_PC),
  },
  {
    linter: 'binaryarch',
    arch: 'x86_64',
    positive: (d) => put(d, 'usr/bin/arm-tool', synthElf({ bits: 64, endian: 'little', machine: 183, type: 2 }), 0o755),
    negative: async (d) => {
      await compile(d, 'usr/bin/native', ['-s']);
      await put(d, 'usr/lib/bpf/prog.o', synthElf({ bits: 64, endian: 'little', machine: 247, type: 1 }), 0o755);
      await put(d, 'usr/lib/firmware/dsp.bin.so', synthElf({ bits: 32, endian: 'little', machine: 40, type: 2 }), 0o755);
    },
  },
];

async function lintLayout(c: Case, layout: Layout): Promise<LintReport> {
  const work = await tempDir();
  const d = join(work, 'pkg');
  await mkdir(d);
  await layout(d);
  return lintPackage(d, { packageName: c.name ?? 'x', arch: c.arch ?? 'x86_64', version: '1.0-r0' });
}

describe('each linter', () => {
  it('every linter has a positive and a negative case here', () => {
    expect(CASES.map((c) => c.linter).sort()).toEqual([...LINTER_NAMES].sort());
  });

  for (const c of CASES) {
    const linter = LINTERS.find((l) => l.name === c.linter);
    it(`${c.linter}: finds the problem (${linter?.defaultSeverity ?? '?'} by default)`, async () => {
      const r = await lintLayout(c, c.positive);
      const mine = r.findings.filter((f) => f.linter === c.linter);
      expect(mine.length, JSON.stringify(r.findings)).toBeGreaterThan(0);
      for (const f of mine) expect(f.severity).toBe(linter?.defaultSeverity);
    });
    it(`${c.linter}: stays quiet on the correct layout`, async () => {
      const r = await lintLayout(c, c.negative);
      expect(r.findings.filter((f) => f.linter === c.linter)).toEqual([]);
    });
  }

  it('strip flags every unstripped executable and library, naming its debug sections', async () => {
    const c = CASES.find((x) => x.linter === 'strip') as Case;
    const r = await lintLayout(c, c.positive);
    expect(r.findings.filter((f) => f.linter === 'strip').map((f) => [f.path, f.message])).toEqual([
      ['usr/bin/debug', expect.stringMatching(/^not stripped \(has \.debug_/)],
      ['usr/lib/libdebug.so', expect.stringMatching(/^not stripped \(has \.debug_/)],
    ]);
  });

  it('default severities are the ones the issue names', () => {
    const errors = LINTERS.filter((l) => l.defaultSeverity === 'error').map((l) => l.name);
    expect(errors.sort()).toEqual(['dev', 'infodir', 'libtool', 'setuidgid', 'tempdir', 'usrmerge', 'varempty', 'worldwrite']);
  });

  it('findings name paths and say why', async () => {
    const r = await lintLayout(CASES[1] as Case, (CASES[1] as Case).positive);
    expect(r.findings.filter((f) => f.linter === 'setuidgid')).toEqual([
      { linter: 'setuidgid', severity: 'error', path: 'usr/bin/su', message: 'setuid file (mode 04755); grant capabilities with setcap instead' },
      { linter: 'setuidgid', severity: 'error', path: 'usr/bin/wall', message: 'setgid file (mode 02755); grant capabilities with setcap instead' },
    ]);
    expect(r.errors).toBe(2);
  });

  it('the same package linted as a directory and as an .apk gives the same findings', async () => {
    const work = await tempDir();
    const d = join(work, 'pkg');
    await compile(d, 'usr/bin/debug', ['-g']);
    await put(d, 'usr/bin/su', '#!/bin/sh\n', 0o4755);
    await put(d, 'usr/share/a/same', 'same text');
    await put(d, 'usr/share/b/same', 'same text');
    await put(d, 'usr/share/man/man1/x.1', 'man');
    await put(d, 'usr/lib/pkgconfig/x.pc', 'Name: x\n');
    await put(d, 'usr/bin/arm', synthElf({ bits: 64, endian: 'little', machine: 183, type: 2 }), 0o755);
    const apk = join(work, 'x-1.0-r0.apk');
    await writeApk({
      sourceDir: d,
      outputPath: apk,
      sourceDateEpoch: 0,
      info: { pkgname: 'x', pkgver: '1.0-r0', arch: 'x86_64', license: [], depend: [], provides: [], replaces: [], installIf: [], triggers: [] },
    });
    const fromDir = await lintPackage(d, { packageName: 'x', arch: 'x86_64', version: '1.0-r0' });
    const fromApk = await lintPackage(apk, { tempParent: work });
    expect(fromApk.findings).toEqual(fromDir.findings);
    expect(new Set(fromApk.findings.map((f) => f.linter))).toEqual(new Set(['setuidgid', 'strip', 'duplicate', 'maninfo', 'pkgconf', 'binaryarch']));
    expect(fromApk).toMatchObject({ package: 'x', version: '1.0-r0', arch: 'x86_64', file: apk });
  });

  it('a corrupt ELF file is a note, not a crash', async () => {
    const work = await tempDir();
    const d = join(work, 'pkg');
    await put(d, 'usr/bin/broken', Buffer.from('\x7fELF\x02\x01\x01garbage', 'latin1'), 0o755);
    const r = await lintPackage(d, { packageName: 'x', arch: 'x86_64' });
    expect(r.notes).toEqual([expect.stringMatching(/^usr\/bin\/broken: not a valid ELF file: .*; skipped$/)]);
  });
});

describe('severities', () => {
  it('checks.disabled downgrades to a warning; --lint-warn and --lint-require override', () => {
    expect(lintSettings().severities.get('setuidgid')).toBe('error');
    expect(lintSettings({ disabled: ['setuidgid'] }).severities.get('setuidgid')).toBe('warning');
    expect(lintSettings({ warn: ['dev'] }).severities.get('dev')).toBe('warning');
    expect(lintSettings({ require: ['strip'] }).severities.get('strip')).toBe('error');
    // The command line wins over the recipe.
    expect(lintSettings({ disabled: ['setuidgid'], require: ['setuidgid'] }).severities.get('setuidgid')).toBe('error');
    expect(lintSettings({ disabled: ['la-files'] }).severities.get('libtool')).toBe('warning');
  });

  it('unknown linter names are errors listing the valid ones', () => {
    expect(() => lintSettings({ disabled: ['stripp'] })).toThrow(UnknownLinterError);
    expect(() => lintSettings({ disabled: ['stripp'] })).toThrow(/checks\.disabled: unknown linter "stripp" \(valid: .*binaryarch.*usrmerge/);
    expect(() => lintSettings({ enabled: ['nope'] })).toThrow(/checks\.enabled: unknown linter "nope"/);
    expect(() => lintSettings({ require: ['a', 'b'] })).toThrow(UsageError);
    expect(() => lintSettings({ require: ['a', 'b'] })).toThrow(/--lint-require: unknown linters "a", "b" \(valid: /);
    expect(() => lintSettings({ require: ['dev'], warn: ['dev'] })).toThrow(/both name "dev"/);
  });

  it('a downgraded finding no longer fails', async () => {
    const work = await tempDir();
    const d = join(work, 'pkg');
    await put(d, 'usr/bin/su', '#!/bin/sh\n', 0o4755);
    const strict = await lintPackage(d, { packageName: 'x', arch: 'x86_64' });
    expect(() => failOnLintErrors([strict])).toThrow(LintFailedError);
    try {
      failOnLintErrors([strict]);
    } catch (err) {
      expect((err as LintFailedError).message).toBe('lint failed: x (setuidgid)');
      expect((err as LintFailedError).details).toEqual(['x: setuidgid: usr/bin/su: setuid file (mode 04755); grant capabilities with setcap instead']);
    }
    const lenient = await lintPackage(d, { packageName: 'x', arch: 'x86_64', settings: lintSettings({ disabled: ['setuidgid'] }) });
    expect(lenient.findings[0]?.severity).toBe('warning');
    expect(() => failOnLintErrors([lenient])).not.toThrow();
  });

  it('formats findings per linter, capped', async () => {
    const work = await tempDir();
    const d = join(work, 'pkg');
    for (let i = 0; i < 12; i++) await put(d, `opt/f${String(i).padStart(2, '0')}`, `content ${i}`);
    const lines = formatLintReport(await lintPackage(d, { packageName: 'x', arch: 'x86_64', version: '1-r0' }), 3);
    expect(lines[0]).toBe('x 1-r0: 0 errors, 13 warnings');
    expect(lines.slice(1)).toEqual([
      '  warning opt: opt: package writes to /opt',
      '  warning opt: opt/f00: package writes to /opt',
      '  warning opt: opt/f01: package writes to /opt',
      '  warning opt: ... and 10 more',
    ]);
  });
});

describe('results and the command', () => {
  async function buildApk(work: string, setuid: boolean): Promise<string> {
    const d = join(work, `tree-${setuid}`);
    await put(d, 'usr/bin/tool', '#!/bin/sh\n', setuid ? 0o4755 : 0o755);
    await put(d, 'opt/x', 'x');
    const apk = join(work, `tool-1.0-r${setuid ? 1 : 0}.apk`);
    await writeApk({
      sourceDir: d,
      outputPath: apk,
      sourceDateEpoch: 0,
      info: { pkgname: 'tool', pkgver: `1.0-r${setuid ? 1 : 0}`, arch: 'x86_64', license: [], depend: [], provides: [], replaces: [], installIf: [], triggers: [] },
    });
    return apk;
  }

  async function run(args: string[]): Promise<{ out: string; error: unknown }> {
    const cli = new Command('builder').exitOverride();
    registerLintCommand(cli);
    const chunks: string[] = [];
    const original = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((c: string | Uint8Array) => (chunks.push(String(c)), true)) as typeof process.stdout.write;
    let error: unknown;
    try {
      await cli.parseAsync(['node', 'builder', 'lint', ...args]);
    } catch (err) {
      error = err;
    } finally {
      process.stdout.write = original;
    }
    return { out: chunks.join(''), error };
  }

  it('writes JSON results next to the package', async () => {
    const work = await tempDir();
    const apk = await buildApk(work, true);
    const report = await lintPackage(apk);
    const path = await writeLintResults(work, report);
    expect(path).toBe(join(work, 'lint-tool-1.0-r1.json'));
    expect(lintResultsFileName(report)).toBe('lint-tool-1.0-r1.json');
    const json = JSON.parse(await readFile(path, 'utf8')) as { findings: { linter: string; severity: string; path: string }[]; file: string; errors: number };
    expect(json.file).toBe('tool-1.0-r1.apk');
    expect(json.errors).toBe(1);
    const renamed = await lintPackage(apk, { reportAs: join(work, 'final', 'tool-1.0-r1.apk') });
    expect(renamed.file).toBe(join(work, 'final', 'tool-1.0-r1.apk'));
    expect(formatLintReport(renamed)[0]).toBe('tool-1.0-r1.apk: 1 error, 2 warnings');
    expect(json.findings).toContainEqual({ linter: 'setuidgid', severity: 'error', path: 'usr/bin/tool', message: expect.any(String) as string });
  });

  it('builder lint fails on errors, passes when they are downgraded, and persists results on request', async () => {
    const work = await tempDir();
    const bad = await buildApk(work, true);
    const good = await buildApk(work, false);
    const failing = await run([bad, good]);
    expect(failing.error).toBeInstanceOf(LintFailedError);
    expect(failing.out).toContain('tool-1.0-r1.apk: 1 error, 2 warnings\n  error   setuidgid: usr/bin/tool: setuid file');
    expect(failing.out).toContain('tool-1.0-r0.apk: 0 errors, 2 warnings');

    const passing = await run(['--lint-warn', 'setuidgid', '--persist-lint-results', bad]);
    expect(passing.error).toBeUndefined();
    expect(JSON.parse(await readFile(join(work, 'lint-tool-1.0-r1.json'), 'utf8'))).toMatchObject({ errors: 0, warnings: 3 });

    const strict = await run(['--lint-require', 'opt', '--json', good]);
    expect(strict.error).toBeInstanceOf(LintFailedError);
    expect((JSON.parse(strict.out) as { ok: boolean; packages: LintReport[] }).packages[0]?.errors).toBe(2);

    const typo = await run(['--lint-warn', 'stripp', good]);
    expect(typo.error).toBeInstanceOf(UsageError);
    expect(String(typo.error)).toMatch(/--lint-warn: unknown linter "stripp" \(valid: /);
  });
});
