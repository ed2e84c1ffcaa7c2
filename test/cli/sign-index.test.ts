// `builder sign-index` through the real CLI: real keys, an index written by `builder index`, checked by
// `builder verify`.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeApk } from '../../src/apk/writer.ts';
import { builder, hasStackTrace, REPO } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const keys = join(REPO, 'node_modules', '.cache', 'builder-test-keys');

beforeAll(async () => {
  await mkdir(keys, { recursive: true });
  for (const name of ['test', 'other']) expect((await builder(['keygen', '--keep-existing', join(keys, name)])).exitCode).toBe(0);
});

async function unsignedIndex(): Promise<string> {
  const dir = await tempDir();
  await mkdir(join(dir, 'tree', 'usr'), { recursive: true });
  const apk = join(dir, 'p-1-r0.apk');
  await writeApk({
    sourceDir: join(dir, 'tree'),
    outputPath: apk,
    sourceDateEpoch: 1700000000,
    info: { pkgname: 'p', pkgver: '1-r0', arch: 'x86_64', builddate: 1700000000, license: [], depend: [], provides: [], replaces: [], installIf: [], triggers: [] },
  });
  const index = join(dir, 'APKINDEX.tar.gz');
  const r = await builder(['index', '-o', index, apk]);
  expect(r.exitCode, r.all).toBe(0);
  return index;
}

describe('builder sign-index', () => {
  it('signs an unsigned index, keeping its content bytes, so that verify accepts it', async () => {
    const index = await unsignedIndex();
    const before = await readFile(index);
    const r = await builder(['sign-index', '--signing-key', join(keys, 'test.rsa'), index]);
    expect(r.exitCode, r.all).toBe(0);
    const after = await readFile(index);
    expect(after.subarray(after.length - before.length).equals(before)).toBe(true);
    const v = await builder(['verify', '--keyring', join(keys, 'test.rsa.pub'), index]);
    expect(v.exitCode, v.all).toBe(0);
    expect(v.stdout).toContain('signed by test.rsa.pub');
  });

  it('leaves a signed index alone without --force and replaces the signature with it', async () => {
    const index = await unsignedIndex();
    expect((await builder(['sign-index', `--signing-key=${join(keys, 'test.rsa')}`, index])).exitCode).toBe(0);
    const signed = await readFile(index);
    const again = await builder(['sign-index', `--signing-key=${join(keys, 'other.rsa')}`, index]);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stdout).toContain('already signed by test.rsa.pub');
    expect((await readFile(index)).equals(signed)).toBe(true);

    const forced = await builder(['sign-index', `--signing-key=${join(keys, 'other.rsa')}`, index, '-f']);
    expect(forced.exitCode, forced.all).toBe(0);
    expect((await builder(['verify', '--keyring', join(keys, 'other.rsa.pub'), index])).exitCode).toBe(0);
    expect((await builder(['verify', '--keyring', join(keys, 'test.rsa.pub'), index])).exitCode).toBe(1);
  });

  it('a missing key or a damaged index is a clear error, the index untouched', async () => {
    const index = await unsignedIndex();
    const before = await readFile(index);
    const r = await builder(['sign-index', '--signing-key', '/nonexistent.rsa', index]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('/nonexistent.rsa');
    expect(hasStackTrace(r.all)).toBe(false);
    expect((await readFile(index)).equals(before)).toBe(true);
    const bad = await builder(['sign-index', '--signing-key', join(keys, 'test.rsa'), join(REPO, 'package.json')]);
    expect(bad.exitCode).toBe(1);
    expect(hasStackTrace(bad.all)).toBe(false);
  });
});
