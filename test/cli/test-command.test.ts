// `builder test` end to end: real packages built into a signed local repository, real Debian test roots.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEBIAN_BASE, SHARED_ROOT_CACHE } from '../environment/shared-cache.ts';
import { builder, hasStackTrace } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const rootCache = ['--root-cache-dir', SHARED_ROOT_CACHE];
let out: string;
let key: string;

beforeAll(async () => {
  // One repository for the whole file: hello built once, signed, indexed.
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  out = await mkdtemp(join(tmpdir(), 'builder-test-repo-'));
  key = join(out, 'test.rsa');
  expect((await builder(['keygen', '--bits', '2048', key])).exitCode).toBe(0);
  const r = await builder(['build', 'examples/hello/hello.yaml', '--base', DEBIAN_BASE, ...rootCache, '--out-dir', out, '--signing-key', key]);
  expect(r.exitCode, r.all).toBe(0);
});

describe('builder test', () => {
  it('passes for good packages, each tested in its own root', async () => {
    const r = await builder(['test', 'examples/hello/hello.yaml', '--base', 'debian:bookworm', ...rootCache, '--out-dir', out, '--keyring-append', `${key}.pub`]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/^.*PASS hello$/m);
    expect(r.stderr).toMatch(/^.*PASS hello-doc$/m);
    expect(r.stderr).toMatch(/making root \w+ \(debian:bookworm \+ 1 apk: hello-doc-1.0.0-r0\)|root \w+ \(debian:bookworm \+ 1 apk: hello-doc-1.0.0-r0\)/);
  });

  it('fails, naming the package and step, when a test step fails; only the named package is tested', async () => {
    const dir = await tempDir();
    const recipe = join(dir, 'hello.yaml');
    const { readFile } = await import('node:fs/promises');
    const text = (await readFile('examples/hello/hello.yaml', 'utf8')).replace('Hello, builder!', 'Goodbye, builder!');
    await writeFile(recipe, text);
    const r = await builder(['test', recipe, 'hello=1.0.0-r0', '--base', 'debian:bookworm', ...rootCache, '--out-dir', out, '--keyring-append', `${key}.pub`]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/FAIL hello: step "Greets" of hello \(.*hello.yaml:\d+:\d+\) failed with exit code 1/);
    expect(r.stderr).toMatch(/1 of 1 package test\(s\) failed: hello/);
    expect(r.stderr).not.toMatch(/hello-doc/);
    expect(hasStackTrace(r.all)).toBe(false);
  });

  it('enforces package.timeout on the test: the step is stopped and the package fails, naming the limit', async () => {
    const dir = await tempDir();
    const recipe = join(dir, 'hello.yaml');
    const { readFile } = await import('node:fs/promises');
    const text = (await readFile('examples/hello/hello.yaml', 'utf8'))
      .replace('  epoch: 0\n', '  epoch: 0\n  timeout: 3\n')
      .replace('hello | grep -qx "Hello, world!"', 'sleep 120');
    await writeFile(recipe, text);
    const r = await builder(['test', recipe, 'hello', '--base', 'debian:bookworm', ...rootCache, '--out-dir', out, '--keyring-append', `${key}.pub`]);
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/FAIL hello: hello: the test exceeded package.timeout \(3s\)/);
    expect(hasStackTrace(r.all)).toBe(false);
  });

  it('refuses an untrusted repository unless told otherwise', async () => {
    const r = await builder(['test', 'examples/hello/hello.yaml', 'hello', '--base', 'debian:bookworm', ...rootCache, '--out-dir', out]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/UNTRUSTED|untrusted|not trusted|unknown key/i);
  });
});
