// `builder license-check` through the real CLI: a real git repository and a real tarball over local HTTP.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { identifyLicense } from '../../src/sbom/license-detect.ts';
import { builder, hasStackTrace } from '../helpers/cli.ts';
import { gitRepoWith } from '../helpers/git.ts';
import { useHttpServer } from '../helpers/http.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const MIT = `MIT License\n\nCopyright (c) 2024 Someone\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\nof this software and associated documentation files (the "Software"), to deal\nin the Software without restriction...\n`;
const GPL2 = `                    GNU GENERAL PUBLIC LICENSE\n                       Version 2, June 1991\n\n Copyright (C) 1989, 1991 Free Software Foundation, Inc.\n`;
const APACHE = `                                 Apache License\n                           Version 2.0, January 2004\n`;

let tarball: Buffer = Buffer.alloc(0);
const http = useHttpServer((_req, res) => res.writeHead(200).end(tarball));

describe('builder license-check', () => {
  it('names a license the recipe does not declare; --fix rewrites package.copyright and keeps the rest', async () => {
    const dir = await tempDir();
    const { repo, commit } = await gitRepoWith(dir, { LICENSE: MIT, 'vendor/lib/COPYING': GPL2, 'main.c': 'int main(void) { return 0; }\n' });
    const recipe = await writeRecipe(dir, `# keep me\npackage:\n  name: foo\n  version: "1"\n  copyright:\n    - license: MIT\n  description: d # and me\npipeline:\n  - uses: git-checkout\n    with:\n      repository: ${repo}\n      branch: main\n      expected-commit: ${commit}\n`);
    const cache = join(dir, 'cache');
    const r = await builder(['license-check', recipe, '--cache-dir', cache]);
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stdout).toContain(': LICENSE: MIT');
    expect(r.stdout).toContain(': vendor/lib/COPYING: GPL-2.0');
    expect(r.stderr).toContain('the sources carry GPL-2.0, which package.copyright does not declare');
    expect(hasStackTrace(r.all)).toBe(false);

    const fix = await builder(['license-check', recipe, '--cache-dir', cache, '--fix']);
    expect(fix.exitCode, fix.all).toBe(0);
    expect(await readFile(recipe, 'utf8')).toContain('# keep me\npackage:\n  name: foo\n  version: "1"\n  copyright:\n    - license: MIT\n    - license: GPL-2.0\n  description: d # and me\n');
    const again = await builder(['license-check', recipe, '--cache-dir', cache]);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stdout).toContain('license-check: OK');
  });

  it('finds the license files inside a downloaded tarball', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'pkg-1.0'));
    await writeFile(join(dir, 'pkg-1.0', 'LICENSE.txt'), APACHE);
    await execa('tar', ['-czf', join(dir, 'pkg.tar.gz'), '-C', dir, 'pkg-1.0']);
    tarball = await readFile(join(dir, 'pkg.tar.gz'));
    const sha = createHash('sha256').update(tarball).digest('hex');
    const recipe = await writeRecipe(dir, `package:\n  name: pkg\n  version: "1.0"\n  copyright:\n    - license: Apache-2.0\npipeline:\n  - uses: fetch\n    with:\n      uri: ${http.url()}/pkg-\${{package.version}}.tar.gz\n      expected-sha256: ${sha}\n`);
    const r = await builder(['license-check', recipe, '--cache-dir', join(dir, 'cache')]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toContain('pkg-1.0/LICENSE.txt: Apache-2.0');
    expect(r.stdout).toContain('license-check: OK');
  });

  it('a directory is scanned as it is', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'COPYING'), 'SPDX-License-Identifier: BSD-2-Clause\n');
    const r = await builder(['license-check', dir]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toBe('COPYING: BSD-2-Clause');
  });
});

describe('identifyLicense', () => {
  it.each([
    [MIT, 'MIT'],
    [GPL2, 'GPL-2.0'],
    [APACHE, 'Apache-2.0'],
    ['GNU LESSER GENERAL PUBLIC LICENSE\nVersion 2.1, February 1999\n... GNU General Public License ...', 'LGPL-2.1'],
    ['Redistribution and use in source and binary forms, with or without\nmodification... Neither the name of the copyright holder', 'BSD-3-Clause'],
    ['some text nobody wrote a fingerprint for', undefined],
  ])('%#', (text, id) => expect(identifyLicense(text)).toBe(id));
});
