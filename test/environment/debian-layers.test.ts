// Layered Debian bases with real mmdebstrap and apt (network to the Debian archive only): a package list that
// names Wolfi packages is mapped to Debian's and installed by apt into a copy of the cached base; a second list
// downloads only the .debs the first did not; an interrupted layer leaves nothing in the cache; a recipe naming
// Wolfi packages builds unchanged. The plain bookworm base is made once in the shared test cache and seeded
// (hard links, never written) into each test's private cache, so the download counts are this test's own.
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { readApkHead } from '../../src/apk/reader.ts';
import { build } from '../../src/build/build.ts';
import { PlainRenderer } from '../../src/build/progress.ts';
import { RootProvider } from '../../src/environment/root-provider.ts';
import { BubblewrapRunner } from '../../src/runners/bubblewrap.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { ARCH, makeKey } from './repo.ts';
import { PLAIN_DEBIAN_BASE, seedPlainBase, SHARED_ROOT_CACHE } from './shared-cache.ts';

const tempDir = useTempDirs();
const BASE = PLAIN_DEBIAN_BASE;

/** A private root cache holding (hard links to) the shared plain bookworm base. */
async function seededCache(dir: string): Promise<string> {
  const cache = join(dir, 'roots-cache');
  await seedPlainBase(cache);
  return cache;
}

function collect(): { lines: string[]; log: (l: string) => void } {
  const lines: string[] = [];
  return { lines, log: (l) => lines.push(l) };
}

describe('layered Debian bases', () => {
  it('layers mapped packages on the cached base, downloads each .deb once, shares equal sets, leaves nothing half-made', async () => {
    const dir = await tempDir();
    const cacheDir = await seededCache(dir);
    const provider = new RootProvider({ cacheDir });
    const first = collect();
    const chatter: string[] = [];
    await provider.prepare({ repositories: [BASE], keyring: [], packages: ['zlib-dev', 'wolfi-base'], arch: ARCH }, first.log, (l) => chatter.push(l));
    const installed = (lines: string[]) => Number(/layered on base [0-9a-f]{12}: installed (\d+) packages/.exec(lines.join('\n'))?.[1]);
    const n1 = installed(first.lines);
    expect(n1).toBeGreaterThan(0);
    expect(first.lines).toContain('environment: zlib-dev: built-in map → Debian zlib1g-dev');
    expect(first.lines).toContain('environment: wolfi-base: built-in map → nothing to install');
    // apt's own output goes to the chatter sink (the build log), not the terminal log.
    expect(chatter.some((l) => /Setting up zlib1g-dev/.test(l))).toBe(true);
    expect(first.lines.some((l) => /Setting up|^Get:/.test(l))).toBe(false);
    expect(provider.stats.debsDownloaded).toBe(n1);

    const second = collect();
    const root2 = await provider.prepare({ repositories: [BASE], keyring: [], packages: ['zlib-dev', 'samurai'], arch: ARCH }, second.log);
    expect(installed(second.lines)).toBe(n1 + 1);
    // Only ninja-build is new: zlib1g-dev and its dependencies come from the download cache.
    expect(provider.stats.debsDownloaded).toBe(n1 + 1);
    expect(provider.stats.layers).toBe(2);
    expect(await execa('test', ['-x', join(root2.directory!, 'usr/bin/ninja')]).then(() => true)).toBe(true);

    // The same Debian set (asked differently) shares the layer and the root.
    const third = collect();
    const root3 = await provider.prepare({ repositories: [BASE], keyring: [], packages: ['ninja', 'zlib-dev', 'wolfi-baselayout'], arch: ARCH }, third.log);
    expect(provider.stats.layers).toBe(2);
    expect(root3.digest).toBe(root2.digest);

    // Interrupted while apt runs: no root, no layer, no temp dir left.
    const before = (await readdir(join(cacheDir, 'roots'))).sort();
    const controller = new AbortController();
    const interrupted = new RootProvider({ cacheDir, signal: controller.signal });
    const attempt = interrupted.prepare({ repositories: [BASE], keyring: [], packages: ['scanelf'], arch: ARCH }, (l) => {
      if (l.includes('layering')) setTimeout(() => controller.abort(), 300);
    });
    await expect(attempt).rejects.toThrow();
    expect((await readdir(join(cacheDir, 'roots'))).sort()).toEqual(before);
    expect(await readdir(join(cacheDir, 'tmp'))).toEqual([]);
    // …and no process of the interrupted layer is left running (zombies wait for this machine's late reaper).
    const ps = await execa('ps', ['-eo', 'stat=,args=']);
    expect(ps.stdout.split('\n').filter((l) => l.includes(cacheDir) && !l.trim().startsWith('Z'))).toEqual([]);
  }, 600_000);

  it('fails before building on an unmapped name; --package-map fixes it; an unreachable mirror is named', async () => {
    const dir = await tempDir();
    const cacheDir = await seededCache(dir);
    const provider = new RootProvider({ cacheDir });
    await expect(
      provider.prepare(
        { repositories: [BASE], keyring: [], packages: ['frobnicate-dev'], arch: ARCH, origins: { 'frobnicate-dev': ['recipe.yaml:9:9 environment.contents.packages'] } },
        () => undefined,
      ),
    ).rejects.toThrow(expect.objectContaining({ message: expect.stringMatching(/no APK repository, base package or map entry for frobnicate-dev$/), details: expect.arrayContaining([expect.stringMatching(/^frobnicate-dev: required by recipe\.yaml:9:9/)]) }));
    const map = join(dir, 'map.yaml');
    await writeFile(map, 'frobnicate-dev: []\n');
    const mapped = new RootProvider({ cacheDir, packageMap: map });
    const lines = collect();
    await mapped.prepare({ repositories: [BASE], keyring: [], packages: ['frobnicate-dev'], arch: ARCH }, lines.log);
    expect(lines.lines).toContain(`environment: frobnicate-dev: ${map}:1:1 → nothing to install`);

    const offline = new RootProvider({ cacheDir: join(dir, 'offline') });
    await expect(offline.prepare({ repositories: ['debian:bookworm@http://127.0.0.1:9/debian'], keyring: [], packages: [], arch: ARCH }, () => undefined)).rejects.toThrow(
      /the Debian mirror http:\/\/127\.0\.0\.1:9\/debian is unreachable/,
    );
  }, 600_000);

  it('builds a recipe that names Wolfi packages, unchanged, on debian:bookworm; runtime deps are the scanned so: names', async () => {
    const dir = await tempDir();
    const key = await makeKey(join(dir, 'keys'), 'builder.rsa');
    await writeFile(
      join(dir, 'recipe.yaml'),
      `package:
  name: zhello
  version: 1.0.0
  epoch: 0
  description: zlib hello
  copyright:
    - license: MIT
environment:
  contents:
    packages:
      - build-base
      - busybox
      - ca-certificates-bundle
      - zlib-dev
      - samurai
      - cmake
      - wolfi-base
pipeline:
  - runs: |
      cat > main.c <<'EOF'
      #include <stdio.h>
      #include <zlib.h>
      int main(void) { printf("zlib %s\\n", zlibVersion()); return 0; }
      EOF
      cat > CMakeLists.txt <<'EOF'
      cmake_minimum_required(VERSION 3.13)
      project(zhello C)
      find_package(ZLIB REQUIRED)
      add_executable(zhello main.c)
      target_link_libraries(zhello ZLIB::ZLIB)
      install(TARGETS zhello DESTINATION bin)
      EOF
      cmake -G Ninja -B build -DCMAKE_INSTALL_PREFIX=/usr
      ninja -C build
      DESTDIR="\${{targets.destdir}}" ninja -C build install
`,
    );
    const out = new PassThrough();
    const lines: string[] = [];
    out.on('data', (c: Buffer) => lines.push(...c.toString('utf8').split('\n')));
    const result = await build({
      recipeFile: join(dir, 'recipe.yaml'),
      arch: ARCH,
      runner: 'bubblewrap',
      runners: [new BubblewrapRunner()],
      environmentProvider: new RootProvider({ cacheDir: SHARED_ROOT_CACHE }),
      environment: { base: BASE },
      outDir: join(dir, 'packages'),
      signingKey: key.key.path,
      cacheDir: join(dir, 'melange-cache'),
      workspaceDir: dir,
      sourceDateEpoch: 1700000000,
      debug: false,
      generateIndex: true,
      keepWorkspace: false,
      progress: new PlainRenderer(out),
    });
    const head = await readApkHead(result.packages[0]!.path);
    expect(head.info.depend).toEqual(expect.arrayContaining(['so:libc.so.6', 'so:libz.so.1']));
    expect(head.info.depend.filter((d) => !d.startsWith('so:'))).toEqual([]);
    // Per-name lines appear when the request is resolved; a later run hits the shared cache's request record.
    expect(lines.join('\n')).toMatch(/samurai: built-in map → Debian ninja-build|environment: cache hit [0-9a-f]{12} \(debian:bookworm \+ deb build-essential,/);
  }, 900_000);
});
