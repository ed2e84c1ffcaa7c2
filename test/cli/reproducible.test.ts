import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builder, hasStackTrace } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

describe('builder build --verify-reproducible', () => {
  it('passes for examples/hello and publishes the packages with an index', async () => {
    const out = await tempDir();
    const r = await builder(['build', 'examples/hello/hello.yaml', '--runner', 'bubblewrap', '--out-dir', out, '--verify-reproducible']);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/reproducible: 2 package\(s\) identical in both builds/);
    expect((await readdir(join(out, 'x86_64'))).sort()).toEqual(['APKINDEX.tar.gz', 'hello-1.0.0-r0.apk', 'hello-doc-1.0.0-r0.apk']);
    expect(await readdir(out)).toEqual(['x86_64']);
  });

  it('fails naming the file when a step writes the current time, and publishes nothing', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    await writeFile(
      join(dir, 'clock.yaml'),
      'package: {name: clock, version: "1"}\npipeline:\n  - runs: |\n      mkdir -p ${{targets.destdir}}/etc\n      date +%s%N > ${{targets.destdir}}/etc/built-at\n',
    );
    const r = await builder(['build', join(dir, 'clock.yaml'), '--runner', 'bubblewrap', '--out-dir', out, '--verify-reproducible']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/not reproducible: clock \(etc\/built-at/);
    expect(hasStackTrace(r.all)).toBe(false);
    expect(await readdir(out)).toEqual([]);
  });
});
