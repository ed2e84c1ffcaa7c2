// R/build runs for real with Debian's r-base-core on a tiny R package written by the test; R's library
// then loads the installed package.
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/tmp.ts';
import { compile, fail, files, makeProject, succeed } from './builtin-project.ts';
import { hasTool } from './sandbox.ts';

const tempDir = useTempDirs();
const HAVE_R = await hasTool('Rscript');

const R_PACKAGE: Record<string, string> = {
  'hellor/DESCRIPTION': `Package: hellor
Version: 1.0
Title: Says Hello
Description: A package for the R/build pipeline test.
Authors@R: person("Test", "Builder", email = "test@example.com", role = c("aut", "cre"))
License: MIT
`,
  'hellor/NAMESPACE': 'export(hello)\n',
  'hellor/R/hello.R': 'hello <- function() "r-built"\n',
};

const recipe = (path: string) => `package: {name: R-hellor, version: "1.0", epoch: 0}
pipeline:
  - uses: R/build
    with:
      package: hellor
      path: ${path}
      version: \${{package.version}}
`;

describe('R/build', () => {
  it('generates install.packages from source into usr/lib/R/library of the package', async () => {
    const plan = compile(await makeProject(await tempDir()), recipe('hellor'));
    expect(plan.environment.packages).toEqual(['R', 'R-dev', 'busybox']);
    expect(plan.packages[0]!.steps[0]!.script).toContain(
      `Rscript -e 'install.packages("hellor", lib = "/home/build/melange-out/R-hellor/usr/lib/R/library/", repos = NULL, type = "source")'`,
    );
  });

  it.skipIf(!HAVE_R)('installs an R package that R then loads (needs r-base-core)', async () => {
    const result = await succeed(await makeProject(await tempDir(), R_PACKAGE), recipe('hellor'));
    const library = join(result.out('R-hellor'), 'usr/lib/R/library');
    expect(await files(join(library, 'hellor'))).toEqual(expect.arrayContaining(['DESCRIPTION', 'NAMESPACE', 'R/hellor']));
    const run = await execa('Rscript', ['-e', `library(hellor, lib.loc = "${library}"); cat(hello())`]);
    expect(run.stdout).toBe('r-built');
  });

  it.skipIf(!HAVE_R)('fails when R could not install the package (R itself only warns)', async () => {
    const broken = { ...R_PACKAGE, 'hellor/R/hello.R': 'hello <- function( "unterminated\n' };
    const log = await fail(await makeProject(await tempDir(), broken), recipe('hellor'));
    expect(log).toContain('R/build: hellor was not installed');
  });
});
