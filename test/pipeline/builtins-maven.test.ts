// maven/configure-mirror runs for real: after it, Debian's Maven (offline, on a project with nothing to
// download) reads the settings it wrote. The test sandbox's host root is read-only, so a private directory
// stands in for /root there (a build root has its own, writable /root). maven/pombump is checked by its generated command only: pombump
// is a Chainguard tool Debian does not package.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/tmp.ts';
import { compile, makeProject, succeed } from './builtin-project.ts';
import { hasTool } from './sandbox.ts';

const tempDir = useTempDirs();
const HAVE_MAVEN = await hasTool('mvn');

const POM = `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>example</groupId>
  <artifactId>hello</artifactId>
  <version>1.0</version>
  <packaging>pom</packaging>
</project>
`;

describe('maven/configure-mirror', () => {
  it.skipIf(!HAVE_MAVEN)('writes /root/.m2/settings.xml with the mirror, which Maven then reads (needs maven)', async () => {
    const home = await tempDir();
    const p = await makeProject(await tempDir(), { 'pom.xml': POM });
    const result = await succeed(p, `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: maven/configure-mirror
  - runs: |
      cat /root/.m2/settings.xml
      # -Duser.home: Java takes the home directory from the passwd entry, which the sandbox's user may lack.
      mvn -o -B -X -Duser.home=/root -Dmaven.repo.local=/home/build/m2-repo validate
`, [{ source: home, target: '/root', readonly: false }]);
    expect(await readFile(join(home, '.m2/settings.xml'), 'utf8')).toContain('<id>google-maven-central</id>');
    expect(result.log).toContain('<mirrorOf>*</mirrorOf>');
    expect(result.log).toContain('<url>https://maven-central.storage-download.googleapis.com/maven2/</url>');
    expect(result.log).toMatch(/Reading user settings from \/root\/\.m2\/settings\.xml/);
    expect(result.log).toContain('BUILD SUCCESS');
  });
});

describe('maven/pombump (generated command only: see the top of the file)', () => {
  it('passes the patch and properties files when they exist and the command-line lists when set', async () => {
    const plan = compile(await makeProject(await tempDir()), `package: {name: hello, version: "1.0", epoch: 0}
pipeline:
  - uses: maven/pombump
    with:
      dependencies: io.netty@netty-codec@4.1.118.Final
      properties: netty.version=4.1.118.Final
      debug: true
`);
    expect(plan.environment.packages).toEqual(['busybox', 'pombump']);
    const script = plan.packages[0]!.steps[0]!.script;
    expect(script).toContain("if [ -f './pombump-deps.yaml' ]; then set -- \"$@\" --patch-file './pombump-deps.yaml'; fi");
    expect(script).toContain("if [ -n 'io.netty@netty-codec@4.1.118.Final' ]; then set -- \"$@\" --dependencies 'io.netty@netty-codec@4.1.118.Final'; fi");
    expect(script).toContain('pombump "$pom" "$@" > "$pom.new"');
    expect(script).toContain("if [ 'true' = true ]; then");
    expect(script).toContain('mv "$pom.new" "$pom"');
  });
});
