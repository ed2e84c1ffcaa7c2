// The SBOM inside a built package records where its sources really came from.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { fileFromApk } from '../helpers/apk.ts';
import { builder } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

describe('SBOM sources', () => {
  it('names a fetched tarball with its sha256 and the package with its purl', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'src', 'data-1'), { recursive: true });
    await writeFile(join(dir, 'src', 'data-1', 'README'), 'data\n');
    const tarball = join(dir, 'data-1.tar.gz');
    await execa('tar', ['-czf', tarball, '-C', join(dir, 'src'), 'data-1']);
    const sha256 = createHash('sha256').update(await readFile(tarball)).digest('hex');
    await writeFile(
      join(dir, 'data.yaml'),
      [
        'package: {name: data, version: "1", epoch: 2, copyright: [{license: MIT}]}',
        'pipeline:',
        '  - uses: fetch',
        `    with: {uri: "file://${tarball}", expected-sha256: ${sha256}}`,
        '  - runs: mkdir -p ${{targets.destdir}}/usr/share/data && cp README ${{targets.destdir}}/usr/share/data/',
        '',
      ].join('\n'),
    );
    const out = join(dir, 'out');
    const r = await builder(['build', join(dir, 'data.yaml'), '--runner', 'bubblewrap', '--out-dir', out, '--cache-dir', join(dir, 'cache'), '--namespace', 'example']);
    expect(r.exitCode, r.all).toBe(0);
    const sbom = JSON.parse(await fileFromApk(join(out, 'x86_64/data-1-r2.apk'), 'var/lib/db/sbom/data-1-r2.spdx.json')) as {
      spdxVersion: string;
      packages: { name: string; externalRefs?: { referenceLocator: string }[]; checksums?: { algorithm: string; checksumValue: string }[]; downloadLocation?: string }[];
    };
    expect(sbom.spdxVersion).toBe('SPDX-2.3');
    const text = JSON.stringify(sbom);
    expect(text).toContain('pkg:apk/example/data@1-r2?arch=x86_64');
    expect(text).toContain(`file://${tarball}`);
    expect(text).toContain(sha256);
  });
});
