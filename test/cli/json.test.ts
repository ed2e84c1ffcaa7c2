// --json of scan, lint, verify and cache ls through the real CLI: one document on stdout with the shape
// docs/json.md gives, ok false and the error when the command fails, nothing else on stdout.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builder, hasStackTrace } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { ARCH, buildRepo, makeKey } from '../environment/repo.ts';

const tempDir = useTempDirs();

async function repo(dir: string): Promise<{ apk: string; index: string; pub: string }> {
  const key = await makeKey(join(dir, 'keys'));
  await buildRepo(join(dir, 'repo'), [{ name: 'tool', version: '1.0-r0', files: { 'usr/bin/tool': '#!/bin/sh\n' }, modes: { 'usr/bin/tool': 0o4755 } }], key.key);
  return { apk: join(dir, 'repo', ARCH, 'tool-1.0-r0.apk'), index: join(dir, 'repo', ARCH, 'APKINDEX.tar.gz'), pub: key.publicPath };
}

function parse(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('--json', () => {
  it('verify: one entry per file; a bad file gives ok false with its error and exit 1', async () => {
    const dir = await tempDir();
    const r = await repo(dir);
    const good = await builder(['verify', '--json', '--keyring', r.pub, r.apk, r.index]);
    expect(good.exitCode).toBe(0);
    expect(parse(good.stdout)).toMatchObject({
      command: 'verify',
      ok: true,
      files: [
        { file: r.apk, ok: true, kind: 'package', package: 'tool', version: '1.0-r0', keyName: expect.stringMatching(/\.pub$/), checksum: expect.any(String) },
        { file: r.index, ok: true, kind: 'index', packages: 1 },
      ],
    });
    const junk = join(dir, 'junk.apk');
    await writeFile(junk, 'not a package');
    const bad = await builder(['verify', '--json', '--keyring', r.pub, r.apk, junk]);
    expect(bad.exitCode).toBe(1);
    const doc = parse(bad.stdout) as { ok: boolean; files: { ok: boolean; error?: { type: string; message: string } }[] };
    expect(doc.ok).toBe(false);
    expect(doc.files.map((f) => f.ok)).toEqual([true, false]);
    expect(doc.files[1]?.error?.message).toContain('junk.apk');
    expect(bad.stderr).toContain('1 of 2 files failed verification');
    const noKey = await builder(['verify', '--json', '--keyring', join(dir, 'missing.pub'), r.apk]);
    expect(noKey.exitCode).toBe(1);
    expect(parse(noKey.stdout)).toMatchObject({ command: 'verify', ok: false, error: { message: expect.stringContaining('missing.pub') } });
    expect(hasStackTrace(noKey.all)).toBe(false);
  });

  it('lint: reports per package; error findings make ok false and exit 1; scan: the scan reports', async () => {
    const dir = await tempDir();
    const r = await repo(dir);
    const lint = await builder(['lint', '--json', r.apk]);
    expect(lint.exitCode).toBe(1); // setuid is an error by default
    const doc = parse(lint.stdout) as { command: string; ok: boolean; packages: { package: string; errors: number; findings: { linter: string; severity: string }[] }[] };
    expect(doc).toMatchObject({ command: 'lint', ok: false });
    expect(doc.packages[0]).toMatchObject({ package: 'tool', errors: 1 });
    expect(doc.packages[0]?.findings).toContainEqual(expect.objectContaining({ linter: 'setuidgid', severity: 'error' }));
    const relaxed = await builder(['lint', '--json', '--lint-warn', 'setuidgid', r.apk]);
    expect(relaxed.exitCode).toBe(0);
    expect(parse(relaxed.stdout)).toMatchObject({ command: 'lint', ok: true });
    const typo = await builder(['lint', '--json', '--lint-warn', 'stripp', r.apk]);
    expect(typo.exitCode).toBe(2);
    expect(parse(typo.stdout)).toMatchObject({ ok: false, error: { type: 'UsageError', message: expect.stringContaining('unknown linter "stripp"') } });

    const scan = await builder(['scan', '--json', r.apk]);
    expect(scan.exitCode).toBe(0);
    expect(parse(scan.stdout)).toMatchObject({ command: 'scan', ok: true, packages: [{ file: r.apk, name: 'tool', version: '1.0-r0', scanned: expect.any(Object), missing: expect.any(Object) }] });
    const missing = await builder(['scan', '--json', join(dir, 'nope.apk')]);
    expect(missing.exitCode).toBe(1);
    expect(parse(missing.stdout)).toMatchObject({ command: 'scan', ok: false, error: { message: expect.stringContaining('nope.apk') } });
  });

  it('cache ls: the roots and their total', async () => {
    const dir = await tempDir();
    const r = await builder(['cache', 'ls', '--json', '--root-cache-dir', join(dir, 'roots')]);
    expect(r.exitCode).toBe(0);
    expect(parse(r.stdout)).toEqual({ command: 'cache ls', ok: true, dir: join(dir, 'roots'), roots: [], totalBytes: 0 });
  });
});
