import { link as hardlink, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { writeApk } from '../../src/apk/writer.ts';
import { scanApks } from '../../src/apk/sca/scan-apk.ts';
import { scanPackages } from '../../src/apk/sca/scan.ts';
import { readTreeFromApk, readTreeFromDir } from '../../src/apk/sca/tree.ts';
import { registerScanCommand } from '../../src/cli/commands/scan.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { buildGreet, link, NO_OPTIONS, put } from './fixtures.ts';

const tempDir = useTempDirs();

async function pack(dir: string, out: string, name: string, extra: { depend?: string[]; provides?: string[]; origin?: string } = {}): Promise<string> {
  const path = join(out, `${name}-1.2.3-r1.apk`);
  await writeApk({
    sourceDir: dir,
    outputPath: path,
    sourceDateEpoch: 0,
    info: {
      pkgname: name,
      pkgver: '1.2.3-r1',
      arch: 'x86_64',
      origin: extra.origin ?? 'greet',
      license: ['MIT'],
      depend: extra.depend ?? [],
      provides: extra.provides ?? [],
      replaces: [],
      installIf: [],
      triggers: [],
    },
  });
  return path;
}

async function captureStdout(fn: () => Promise<void>): Promise<string> {
  const chunks: string[] = [];
  const original = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
    return true;
  }) as typeof process.stdout.write;
  try {
    await fn();
  } finally {
    process.stdout.write = original;
  }
  return chunks.join('');
}

describe('scanning .apk files', () => {
  it('finds in packages what scanning their directories finds, siblings grouped by origin', async () => {
    const work = await tempDir();
    const g = await buildGreet(work);
    const lib = await pack(g.lib, work, 'libgreet', { provides: ['so:libgreet.so.1=1.2.3'], depend: ['so:libc.so.6'] });
    const program = await pack(g.program, work, 'greet');
    const dev = await pack(g.dev, work, 'libgreet-dev');

    const fromDirs = await scanPackages({
      packages: [
        { name: 'libgreet', version: '1.2.3-r1', dir: g.lib, options: NO_OPTIONS, declared: { runtime: [], provides: [] } },
        { name: 'greet', version: '1.2.3-r1', dir: g.program, options: NO_OPTIONS, declared: { runtime: [], provides: [] } },
        { name: 'libgreet-dev', version: '1.2.3-r1', dir: g.dev, options: NO_OPTIONS, declared: { runtime: [], provides: [] } },
      ],
    });
    const reports = await scanApks([lib, program, dev]);
    expect(reports.map((r) => r.name)).toEqual(['libgreet', 'greet', 'libgreet-dev']);
    for (const r of reports) expect(r.scanned).toEqual(fromDirs.get(r.name));

    const libReport = reports[0]!;
    expect(libReport.missing).toEqual({ depend: [], provides: [] });
    const progReport = reports[1]!;
    expect(progReport.missing.depend).toEqual(['so:ld-linux-x86-64.so.2', 'so:libc.so.6', 'so:libgreet.so.1']);
  });

  it('the package tree from an .apk keeps modes, link targets and hard links, and only the contents worth reading', async () => {
    const work = await tempDir();
    const d = join(work, 'tree');
    await put(d, 'usr/bin/tool', '#!/bin/sh\n', 0o4755);
    await put(d, 'usr/share/data.txt', 'plain data');
    await link(d, 'usr/bin/alias', 'tool');
    await put(d, 'usr/lib/pkgconfig/x.pc', 'Name: x\nVersion: 1\n');
    await hardlink(join(d, 'usr/bin/tool'), join(d, 'usr/bin/tool2'));
    const apk = await pack(d, work, 'tree');
    const tree = await readTreeFromApk(apk);
    try {
      const byPath = tree.byPath;
      expect(byPath.get('usr/bin/tool')).toMatchObject({ type: 'file', mode: 0o4755, readable: true });
      expect(byPath.get('usr/bin/tool2')).toMatchObject({ type: 'file', hardlinkTo: 'usr/bin/tool', readable: true });
      expect(byPath.get('usr/share/data.txt')).toMatchObject({ type: 'file', readable: false, size: 10 });
      expect(byPath.get('usr/share/data.txt')?.sha1).toMatch(/^[0-9a-f]{40}$/);
      expect(byPath.get('usr/bin/alias')).toMatchObject({ type: 'symlink', linkTarget: 'tool' });
      expect(byPath.get('usr/lib/pkgconfig/x.pc')?.readable).toBe(true);
      const fromDir = await readTreeFromDir(d);
      expect(tree.entries.map((e) => [e.path, e.type, e.mode, e.size])).toEqual(fromDir.entries.map((e) => [e.path, e.type, e.mode, e.size]));
    } finally {
      await tree.dispose();
    }
    expect(await readdir(tree.root).catch(() => 'gone')).toBe('gone');
  });

  it('builder scan prints provides and depends, marking what .PKGINFO lacks; --json gives the reports', async () => {
    const work = await tempDir();
    const g = await buildGreet(work);
    const lib = await pack(g.lib, work, 'libgreet', { provides: ['so:libgreet.so.1=1.2.3'] });
    const program = await pack(g.program, work, 'greet', { depend: ['so:libc.so.6', 'so:libgreet.so.1'] });
    const run = async (args: string[]): Promise<string> => {
      const cli = new Command('builder').exitOverride();
      registerScanCommand(cli);
      return captureStdout(() => cli.parseAsync(['node', 'builder', 'scan', ...args]).then(() => undefined));
    };
    const text = await run([lib, program]);
    expect(text).toContain(`${program}: greet 1.2.3-r1\n  provides:\n    cmd:greet=1.2.3-r1   (not in .PKGINFO)\n`);
    expect(text).toContain('  depends:\n    so:ld-linux-x86-64.so.2   (not in .PKGINFO)\n    so:libc.so.6\n    so:libgreet.so.1\n');
    expect(text).toContain(`${lib}: libgreet 1.2.3-r1\n  provides:\n    so:libgreet.so.1=1.2.3\n  depends:\n    so:libc.so.6   (not in .PKGINFO)\n`);
    const json = (JSON.parse(await run(['--json', program])) as { packages: { name: string; scanned: { provides: string[] } }[] }).packages;
    expect(json[0]?.name).toBe('greet');
    expect(json[0]?.scanned.provides).toEqual(['cmd:greet=1.2.3-r1']);
  });

  it('a corrupt package is an error naming it, and leaves no temp directories', async () => {
    const work = await tempDir();
    const bad = await put(work, 'bad.apk', 'not a package at all');
    await expect(scanApks([bad], { tempParent: work })).rejects.toThrow(/bad\.apk/);
    // A good head with a data stream cut short fails after the temp tree exists.
    const g = await buildGreet(work);
    const whole = await readFile(await pack(g.program, work, 'greet'));
    const cut = join(work, 'cut.apk');
    await writeFile(cut, whole.subarray(0, whole.length - 2000));
    await expect(scanApks([cut], { tempParent: work })).rejects.toThrow(/cut\.apk/);
    expect((await readdir(work)).filter((n) => n.startsWith('builder-tree-'))).toEqual([]);
  });
});
