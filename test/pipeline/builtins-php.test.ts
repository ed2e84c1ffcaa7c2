// pecl/phpize and pecl/install run for real: a tiny PHP extension written by the test is prepared with
// Debian's php-dev (phpize, php-config), built with autoconf/make, installed and then loaded by php.
// Debian's phpize asks dpkg-query for libtool's version to find its auxiliary files; the test sandbox's
// host root binds /usr but not dpkg's database under /var, so the real test puts a dpkg-query on PATH that
// answers with the host's libtool version (a Debian build root has the database itself).
import { chmod, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/tmp.ts';
import { compile, files, makeProject, succeed } from './builtin-project.ts';
import { hasTool } from './sandbox.ts';

const tempDir = useTempDirs();
// phpize copies libtool's auxiliary files (ltmain.sh, config.guess) from Debian's libtool package.
const HAVE_PHP = (await hasTool('phpize')) && (await hasTool('php')) && (await hasTool('libtoolize'));

const EXTENSION: Record<string, string> = {
  'config.m4': `PHP_ARG_ENABLE([builderhello], [whether to enable builderhello], [AS_HELP_STRING([--enable-builderhello], [Enable builderhello])], [yes])
if test "$PHP_BUILDERHELLO" != "no"; then
  PHP_NEW_EXTENSION(builderhello, builderhello.c, $ext_shared)
fi
`,
  'builderhello.c': `#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "php.h"

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_builder_hello, 0, 0, IS_STRING, 0)
ZEND_END_ARG_INFO()

PHP_FUNCTION(builder_hello) { RETURN_STRING("pecl-built"); }

static const zend_function_entry builderhello_functions[] = {
  PHP_FE(builder_hello, arginfo_builder_hello)
  PHP_FE_END
};

zend_module_entry builderhello_module_entry = {
  STANDARD_MODULE_HEADER, "builderhello", builderhello_functions,
  NULL, NULL, NULL, NULL, NULL, "1.0", STANDARD_MODULE_PROPERTIES
};

#ifdef COMPILE_DL_BUILDERHELLO
ZEND_GET_MODULE(builderhello)
#endif
`,
};

const RECIPE = `package: {name: php-builderhello, version: "1.0", epoch: 0}
pipeline:
  - uses: pecl/phpize
  - uses: autoconf/make
  - uses: pecl/install
    with:
      extension: builderhello
`;

describe('pecl/phpize and pecl/install', () => {
  it('generate phpize, configure against php-config and make install into the package', async () => {
    const plan = compile(await makeProject(await tempDir()), RECIPE);
    expect(plan.environment.packages).toEqual(['autoconf', 'busybox', 'make', 'automake']);
    const [phpize, , install] = plan.packages[0]!.steps.map((s) => s.script);
    expect(phpize).toBe("phpize\n./configure --prefix='/usr' --with-php-config='php-config'\n");
    expect(install).toContain("make INSTALL_ROOT='/home/build/melange-out/php-builderhello' install\n");
    expect(install).toContain(
      "echo 'extension=builderhello' > '/home/build/melange-out/php-builderhello/etc/php/conf.d/builderhello.ini'",
    );
  });

  it.skipIf(!HAVE_PHP)('build a PHP extension that php then loads (needs php-dev and libtool)', async () => {
    const libtool = (await execa('dpkg-query', ['-f', '${Version}', '-W', 'libtool'])).stdout.trim();
    const p = await makeProject(await tempDir(), { ...EXTENSION, 'shim/dpkg-query': `#!/bin/sh\necho '${libtool}'\n` });
    await chmod(join(p.src, 'shim/dpkg-query'), 0o755);
    const withShim = RECIPE.replace('pipeline:', 'environment:\n  environment:\n    PATH: /home/build/shim:/usr/sbin:/usr/bin:/sbin:/bin\npipeline:');
    const result = await succeed(p, withShim);
    const extensionDir = (await execa('php-config', ['--extension-dir'])).stdout.trim();
    const out = result.out('php-builderhello');
    expect(await files(out)).toEqual(expect.arrayContaining(['etc/php/conf.d/builderhello.ini', `${extensionDir.slice(1)}/builderhello.so`]));
    expect(await readFile(join(out, 'etc/php/conf.d/builderhello.ini'), 'utf8')).toBe('extension=builderhello\n');
    const run = await execa('php', ['-n', '-d', `extension=${join(out, extensionDir, 'builderhello.so')}`, '-r', 'echo builder_hello();']);
    expect(run.stdout).toBe('pecl-built');
  });
});
