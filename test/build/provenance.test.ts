import { createHash } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILD_TYPE, type ProvenanceInput, type ProvenanceStatement, provenancePath, writeProvenance } from '../../src/build/provenance.ts';
import type { PreparedSource } from '../../src/sources/prepare.ts';
import { readTarGz } from '../helpers/tar.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

function input(sources: PreparedSource[]): ProvenanceInput {
  return {
    plan: { recipeFile: '/src/os/hello.yaml', arch: 'x86_64', buildOptions: ['extra'] },
    recipe: { path: 'hello.yaml', repositoryUrl: 'https://github.com/example/os', commit: COMMIT },
    sources,
    runner: 'bubblewrap',
    namespace: 'wolfi',
    startedOn: new Date('2026-01-01T00:00:00Z'),
    finishedOn: new Date('2026-01-01T00:01:00Z'),
    invocationId: 'b6f1c3c0-0000-4000-8000-000000000000',
  };
}

describe('SLSA provenance', () => {
  it('writes <name>-<ver>-r<N>.attest.tar.gz: one in-toto statement naming the apk, its sha256 and the sources', async () => {
    const dir = await tempDir();
    const apk = join(dir, 'hello-1.0-r2.apk');
    await writeFile(apk, 'not really an apk, but bytes to hash');
    const tarball: PreparedSource = {
      source: { kind: 'fetch', uri: 'https://example.org/hello-1.0.tar.gz', sha256: 'A'.repeat(64) } as PreparedSource['source'],
      path: '/cache/x', cached: false, sha256: 'b'.repeat(64),
    };
    const git: PreparedSource = {
      source: { kind: 'git', repository: 'https://example.org/lib.git' } as PreparedSource['source'],
      path: '/cache/y', cached: true, commit: 'c'.repeat(40),
    };
    const path = await writeProvenance(apk, input([tarball, git]), 1_700_000_000);
    expect(path).toBe(join(dir, 'hello-1.0-r2.attest.tar.gz'));
    expect(provenancePath(apk)).toBe(path);
    // Nothing but the apk and the attestation: the temp file was renamed.
    expect((await readdir(dir)).sort()).toEqual(['hello-1.0-r2.apk', 'hello-1.0-r2.attest.tar.gz']);

    const entries = await readTarGz(path);
    expect(entries.map(({ name, mode, mtime }) => ({ name, mode, mtime }))).toEqual([{ name: 'hello-1.0-r2.apk.intoto.json', mode: 0o644, mtime: 1_700_000_000 }]);
    const st = JSON.parse(entries[0]!.text) as ProvenanceStatement;
    const sha = createHash('sha256').update('not really an apk, but bytes to hash').digest('hex');
    expect(st).toMatchObject({
      _type: 'https://in-toto.io/Statement/v1',
      predicateType: 'https://slsa.dev/provenance/v1',
      subject: [{ name: 'hello-1.0-r2.apk', digest: { sha256: sha } }],
      predicate: {
        buildDefinition: {
          buildType: BUILD_TYPE,
          externalParameters: { recipe: 'hello.yaml', repository: 'https://github.com/example/os', commit: COMMIT, arch: 'x86_64', buildOptions: ['extra'], namespace: 'wolfi' },
          internalParameters: { runner: 'bubblewrap' },
          resolvedDependencies: [
            { name: 'hello.yaml', uri: 'git+https://github.com/example/os', digest: { gitCommit: COMMIT } },
            { uri: 'https://example.org/hello-1.0.tar.gz', digest: { sha256: 'b'.repeat(64) } },
            { uri: 'git+https://example.org/lib.git', digest: { gitCommit: 'c'.repeat(40) } },
          ],
        },
        runDetails: {
          builder: { id: expect.stringMatching(/^urn:builder:/) as unknown as string },
          metadata: { invocationId: 'b6f1c3c0-0000-4000-8000-000000000000', startedOn: '2026-01-01T00:00:00.000Z', finishedOn: '2026-01-01T00:01:00.000Z' },
        },
      },
    });
  });
});
