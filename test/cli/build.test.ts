// End to end through the real CLI: real bwrap, real cc, real files.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readApk } from '../../src/apk/reader.ts';
import { readApkIndex } from '../../src/apk/index.ts';
import { builder, hasStackTrace, REPO } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
let keys: string;

beforeAll(async () => {
  keys = join(REPO, 'node_modules', '.cache', 'builder-test-keys');
  await mkdir(keys, { recursive: true });
  for (const name of ['test', 'other']) {
    const exists = await stat(join(keys, `${name}.rsa`)).then(() => true, () => false);
    if (!exists) {
      const r = await builder(['keygen', join(keys, name)]);
      expect(r.exitCode, r.all).toBe(0);
    }
  }
});

async function listFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

async function buildHello(out: string, extra: string[] = [], env: Record<string, string> = {}) {
  return builder(['build', 'examples/hello/hello.yaml', '--runner', 'bubblewrap', '--out-dir', out, '--signing-key', join(keys, 'test.rsa'), ...extra], {
    env: { SOURCE_DATE_EPOCH: '1700000000', ...env },
  });
}

describe('builder build examples/hello', () => {
  it('builds two signed packages and a signed index that verify with the right key only', async () => {
    const out = await tempDir();
    const r = await buildHello(out);
    expect(r.exitCode, r.all).toBe(0);
    expect(await listFiles(out)).toEqual(['x86_64', 'x86_64/APKINDEX.tar.gz', 'x86_64/hello-1.0.0-r0.apk', 'x86_64/hello-doc-1.0.0-r0.apk']);

    const main = await readApk(join(out, 'x86_64/hello-1.0.0-r0.apk'));
    expect(main.info).toMatchObject({ pkgname: 'hello', pkgver: '1.0.0-r0', arch: 'x86_64', origin: 'hello', provides: ['cmd:hello=1.0.0-r0', 'greeting=1.0.0'], license: ['Apache-2.0'] });
    expect(main.signatures.map((s) => s.keyName)).toEqual(['test.rsa.pub']);
    const doc = await readApk(join(out, 'x86_64/hello-doc-1.0.0-r0.apk'));
    expect(doc.info).toMatchObject({ pkgname: 'hello-doc', origin: 'hello' });

    const index = await readApkIndex(join(out, 'x86_64/APKINDEX.tar.gz'));
    expect(index.entries.map((e) => e.pkgname)).toEqual(['hello', 'hello-doc']);
    const mainEntry = index.entries[0]!;
    expect(mainEntry.checksum).toBe(`Q1${createHash('sha1').update(main.controlCompressed).digest('base64')}`);

    const apks = [join(out, 'x86_64/hello-1.0.0-r0.apk'), join(out, 'x86_64/hello-doc-1.0.0-r0.apk'), join(out, 'x86_64/APKINDEX.tar.gz')];
    const good = await builder(['verify', '--keyring', join(keys, 'test.rsa.pub'), ...apks]);
    expect(good.exitCode, good.all).toBe(0);
    const bad = await builder(['verify', '--keyring', join(keys, 'other.rsa.pub'), ...apks]);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/UNTRUSTED/);
    expect(hasStackTrace(bad.all ?? '')).toBe(false);
  });

  it('the built program runs and the doc subpackage got the manual page', async () => {
    const out = await tempDir();
    expect((await buildHello(out, ['--no-generate-index'])).exitCode).toBe(0);
    expect(await listFiles(out)).toEqual(['x86_64', 'x86_64/hello-1.0.0-r0.apk', 'x86_64/hello-doc-1.0.0-r0.apk']);
    const { listApkData } = await import('../../src/apk/reader.ts');
    const names = (await listApkData(join(out, "x86_64/hello-1.0.0-r0.apk"))).map((e: { name: string }) => e.name);
    expect(names).toEqual([
      'usr',
      'usr/bin',
      'usr/bin/hello',
      'usr/share',
      'var',
      'var/lib',
      'var/lib/db',
      'var/lib/db/sbom',
      'var/lib/db/sbom/hello-1.0.0-r0.spdx.json',
    ]);
    const main = await readApk(join(out, 'x86_64/hello-1.0.0-r0.apk'));
    // Scanned dependencies and provides, merged with the declared ones.
    expect(main.info.depend).toContain('so:libc.so.6');
    expect(main.info.provides).toEqual(['cmd:hello=1.0.0-r0', 'greeting=1.0.0']);
    expect(main.controlFiles.map((f) => f.name)).toEqual(['.melange.yaml']);
    const docNames = (await listApkData(join(out, 'x86_64/hello-doc-1.0.0-r0.apk'))).map((e) => e.name);
    expect(docNames).toContain('usr/share/man/man1/hello.1');
  });

  it('is reproducible: the same SOURCE_DATE_EPOCH gives byte-identical packages', async () => {
    const a = await tempDir();
    const b = await tempDir();
    expect((await buildHello(a)).exitCode).toBe(0);
    expect((await buildHello(b)).exitCode).toBe(0);
    for (const f of ['hello-1.0.0-r0.apk', 'hello-doc-1.0.0-r0.apk', 'APKINDEX.tar.gz']) {
      expect((await readFile(join(a, 'x86_64', f))).equals(await readFile(join(b, 'x86_64', f))), f).toBe(true);
    }
  });
});

describe('a failing build', () => {
  it('stops at the failing step with its exit code and output tail, writes nothing, keeps the workspace', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    await writeFile(
      join(dir, 'fail.yaml'),
      `package: {name: failing, version: "1"}\npipeline:\n  - name: ok\n    runs: echo first\n  - name: breaks\n    runs: |\n      echo some output\n      echo the last words >&2\n      exit 7\n  - runs: echo never\n`,
    );
    const r = await builder(['build', join(dir, 'fail.yaml'), '--runner', 'bubblewrap', '--out-dir', out, '--workspace-dir', join(dir, 'ws')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/step "breaks" of failing \(.*fail.yaml:6:11\) failed with exit code 7/);
    expect(r.stderr).toMatch(/the last words/);
    expect(r.all).not.toMatch(/never/);
    expect(hasStackTrace(r.all ?? '')).toBe(false);
    const kept = /workspace kept at (\S+)/.exec(r.stderr)?.[1];
    expect(kept).toBeDefined();
    expect(await readFile(join(kept!, 'build.log'), 'utf8')).toMatch(/some output/);
    expect(await listFiles(out).catch(() => [])).toEqual(['x86_64']);
  });
});

describe('bad input gets one clear message and leaves nothing behind', () => {
  async function expectError(args: string[], message: RegExp, env: Record<string, string> = {}, code = 1) {
    const r = await builder(args, { env });
    expect(r.stderr).toMatch(message);
    expect(r.exitCode, r.all).toBe(code);
    expect(hasStackTrace(r.all ?? '')).toBe(false);
    return r;
  }

  it('missing recipe file', async () => {
    await expectError(['build', '/nonexistent/r.yaml'], /\/nonexistent\/r.yaml: cannot read recipe: no such file/);
  });

  it('YAML syntax error, unknown key, missing version, invalid name: each with its location', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'syntax.yaml'), 'package:\n  name: [x\n');
    await expectError(['build', join(dir, 'syntax.yaml')], /syntax.yaml:\d+:\d+: /);
    await writeFile(join(dir, 'unknown.yaml'), 'package: {name: x, version: "1"}\npipline: []\n');
    await expectError(['build', join(dir, 'unknown.yaml')], /unknown.yaml:2:1: pipline: unknown key "pipline" \(did you mean "pipeline"\?\)/);
    await writeFile(join(dir, 'nover.yaml'), 'package:\n  name: x\n');
    await expectError(['build', join(dir, 'nover.yaml')], /nover.yaml:2:3: package.version: "version" is required/);
    await writeFile(join(dir, 'badname.yaml'), 'package:\n  name: "bad name"\n  version: "1"\n');
    await expectError(['build', join(dir, 'badname.yaml')], /badname.yaml:2:9: package.name: invalid package name "bad name"/);
  });

  it('bwrap not installed names the package to install', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    await expectError(['build', 'examples/hello/hello.yaml', '--runner', 'bubblewrap', '--out-dir', out], /apt-get install bubblewrap/, { PATH: '/nonexistent' });
    expect(await listFiles(out).catch(() => [])).toEqual(['x86_64']);
  });

  it('unreadable signing key, unwritable out dir', async () => {
    const dir = await tempDir();
    await expectError(['build', 'examples/hello/hello.yaml', '--out-dir', join(dir, 'o'), '--signing-key', join(dir, 'nope.rsa')], /nope.rsa/);
    await writeFile(join(dir, 'file'), '');
    await expectError(['build', 'examples/hello/hello.yaml', '--out-dir', join(dir, 'file', 'sub')], /--out-dir: .*file\/sub.* is not writable/);
  });

  it('a tampered package is refused by verify and index, and no index is written', async () => {
    const out = await tempDir();
    expect((await buildHello(out, ['--no-generate-index'])).exitCode).toBe(0);
    const apk = join(out, 'x86_64/hello-1.0.0-r0.apk');
    const bytes = await readFile(apk);
    const at = bytes.length - 40;
    bytes[at] = bytes[at]! ^ 0xff;
    const tampered = join(out, 'tampered.apk');
    await writeFile(tampered, bytes);
    await expectError(['verify', '--keyring', join(keys, 'test.rsa.pub'), tampered], /tampered.apk/);
    const indexDir = await tempDir();
    await expectError(['index', '-o', join(indexDir, 'APKINDEX.tar.gz'), tampered], /tampered.apk/);
    expect(await readdir(indexDir)).toEqual([]);
  });

  it('usage errors exit with code 2', async () => {
    await expectError(['build', 'x.yaml', '--runner', 'docker'], /--runner/, {}, 2);
    await expectError(['frobnicate'], /unknown command/, {}, 2);
  });
});

describe('sign and index commands', () => {
  it('signs unsigned packages in place and merges them into an existing index', async () => {
    const out = await tempDir();
    const r = await builder(['build', 'examples/hello/hello.yaml', '--runner', 'bubblewrap', '--out-dir', out, '--no-generate-index'], {
      env: { SOURCE_DATE_EPOCH: '1700000000' },
    });
    expect(r.exitCode, r.all).toBe(0);
    const main = join(out, 'x86_64/hello-1.0.0-r0.apk');
    const doc = join(out, 'x86_64/hello-doc-1.0.0-r0.apk');
    expect((await builder(['verify', '--keyring', join(keys, 'test.rsa.pub'), main])).stderr).toMatch(/UNTRUSTED/);

    const signed = await builder(['sign', '-k', join(keys, 'test.rsa'), main, doc]);
    expect(signed.exitCode, signed.all).toBe(0);
    const ok = await builder(['verify', '--keyring', join(keys, 'test.rsa.pub'), main, doc]);
    expect(ok.exitCode, ok.all).toBe(0);

    const indexPath = join(out, 'x86_64/APKINDEX.tar.gz');
    const first = await builder(['index', '-o', indexPath, '--signing-key', join(keys, 'test.rsa'), main]);
    expect(first.exitCode, first.all).toBe(0);
    const second = await builder(['index', '-o', indexPath, '--signing-key', join(keys, 'test.rsa'), doc]);
    expect(second.exitCode, second.all).toBe(0);
    const index = await readApkIndex(indexPath);
    expect(index.entries.map((e) => e.pkgname)).toEqual(['hello', 'hello-doc']);
    const verified = await builder(['verify', '--keyring', join(keys, 'test.rsa.pub'), indexPath]);
    expect(verified.stdout).toMatch(/index of 2 packages, signed by test.rsa.pub/);
  });
});
