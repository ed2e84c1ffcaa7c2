// `builder rebuild` through the real CLI: a package built by builder (real bwrap, host root) is rebuilt from
// the plan it embeds and must come out byte for byte the same.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeApk } from '../../src/apk/writer.ts';
import { builder, hasStackTrace, REPO } from '../helpers/cli.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
let key: string;

beforeAll(async () => {
  const keys = join(REPO, 'node_modules', '.cache', 'builder-test-keys');
  await mkdir(keys, { recursive: true });
  key = join(keys, 'test.rsa');
  const r = await builder(['keygen', '--keep-existing', join(keys, 'test')]);
  expect(r.exitCode, r.all).toBe(0);
});

const RECIPE = `package:
  name: greeting
  version: 1.0.0
  epoch: 2
  description: a file from the recipe's folder
  copyright:
    - license: MIT
pipeline:
  - runs: |
      mkdir -p \${{targets.destdir}}/usr/share/greeting
      cp data.txt \${{targets.destdir}}/usr/share/greeting/
subpackages:
  - name: greeting-extra
    pipeline:
      - runs: |
          mkdir -p \${{targets.contextdir}}/usr/share/extra
          echo extra > \${{targets.contextdir}}/usr/share/extra/x
`;

async function buildOnce(signed: boolean) {
  const src = await tempDir();
  const recipe = await writeRecipe(src, RECIPE);
  await writeFile(join(src, 'data.txt'), 'hello\n');
  const out = await tempDir();
  const r = await builder(['build', recipe, '--runner', 'bubblewrap', '--out-dir', out, '--namespace', 'Wolfi', ...(signed ? ['--signing-key', key] : [])], {
    env: { SOURCE_DATE_EPOCH: '1700000000' },
  });
  expect(r.exitCode, r.all).toBe(0);
  return { src, apk: join(out, 'x86_64', 'greeting-1.0.0-r2.apk'), sub: join(out, 'x86_64', 'greeting-extra-1.0.0-r2.apk') };
}

describe('builder rebuild', () => {
  it('reproduces a signed package and its subpackage byte for byte', async () => {
    const { src, apk, sub } = await buildOnce(true);
    const re = await tempDir();
    const r = await builder(['rebuild', apk, sub, '--runner', 'bubblewrap', '--out-dir', re, '--signing-key', key, '--source-dir', src]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain('greeting-extra-1.0.0-r2.apk: greeting was rebuilt already');
    for (const [orig, name] of [[apk, 'greeting-1.0.0-r2.apk'], [sub, 'greeting-extra-1.0.0-r2.apk']] as const) {
      expect((await readFile(orig)).equals(await readFile(join(re, 'x86_64', name))), name).toBe(true);
    }
    expect(r.all).toContain('(byte for byte)');
  });

  it('without the signing key, a signed package matches apart from its signature', async () => {
    const { src, apk } = await buildOnce(true);
    const re = await tempDir();
    const r = await builder(['rebuild', apk, '--runner', 'bubblewrap', '--out-dir', re, '--source-dir', src]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain('apart from the signature');
  });

  it('fails naming the differing file when the sources changed', async () => {
    const { src, apk } = await buildOnce(false);
    await writeFile(join(src, 'data.txt'), 'changed\n');
    const re = await tempDir();
    const r = await builder(['rebuild', apk, '--runner', 'bubblewrap', '--out-dir', re, '--source-dir', src]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/rebuild differs: greeting-1\.0\.0-r2\.apk \(usr\/share\/greeting\/data\.txt/);
    expect(hasStackTrace(r.all)).toBe(false);
  });

  it('a package without an embedded recipe says so', async () => {
    const dir = await tempDir();
    const tree = join(dir, 'tree');
    await mkdir(join(tree, 'usr'), { recursive: true });
    const apk = join(dir, 'bare-1-r0.apk');
    await writeApk({
      sourceDir: tree,
      outputPath: apk,
      sourceDateEpoch: 0,
      info: { pkgname: 'bare', pkgver: '1-r0', arch: 'x86_64', license: [], depend: [], provides: [], replaces: [], installIf: [], triggers: [] },
    });
    const r = await builder(['rebuild', apk, '--out-dir', join(dir, 're')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`${apk}: the package embeds no recipe (.melange.yaml in its control stream), so it cannot be rebuilt`);
    expect(hasStackTrace(r.all)).toBe(false);
  });
});
