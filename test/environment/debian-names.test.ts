// The package-name map (Wolfi names → Debian packages) and how a Debian base's names are assigned: APK
// repository, base (including cmd:/pc:/so: provides), map. Targets are checked against Debian's real
// package list: apt's lists on this (Debian 12) machine, read by `apt-cache pkgnames`.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolve } from '../../src/environment/apk/resolve.ts';
import { builtinPackageMap, mapPackageName, packageMapFor } from '../../src/environment/debian/name-map.ts';
import { assignNames, UnmappedNamesError } from '../../src/environment/debian/names.ts';
import { ConfigError } from '../../src/errors.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
let bookworm: Set<string>;

beforeAll(async () => {
  const out = await execa('apt-cache', ['pkgnames']);
  bookworm = new Set(out.stdout.split('\n').filter((l) => l !== ''));
  // The lists must be bookworm's for the check to mean anything.
  expect(bookworm.has('libssl3')).toBe(true);
});

describe('built-in package map', () => {
  it('names only packages Debian bookworm has', async () => {
    const map = await builtinPackageMap();
    expect(map.names.size).toBeGreaterThan(150);
    const missing = [...map.names].flatMap(([name, e]) => e.packages.filter((p) => !bookworm.has(p)).map((p) => `${name} → ${p}`));
    for (const f of map.families) missing.push(...f.packages.filter((p) => !p.includes('{rest}') && !bookworm.has(p)).map((p) => `${f.pattern} → ${p}`));
    expect(missing).toEqual([]);
  });

  it('maps the names the issue and real recipes use, families to the suite version with one warning', async () => {
    const map = await builtinPackageMap();
    const m = (name: string) => mapPackageName(map, name, 'bookworm');
    expect(m('build-base')?.packages).toEqual(['build-essential']);
    expect(m('ca-certificates-bundle')?.packages).toEqual(['ca-certificates']);
    expect(m('samurai')?.packages).toEqual(['ninja-build']);
    expect(m('ninja')?.packages).toEqual(['ninja-build']);
    expect(m('pkgconf-dev')?.packages).toEqual(['pkgconf']);
    expect(m('zlib-dev')?.packages).toEqual(['zlib1g-dev']);
    expect(m('openssl-dev')?.packages).toEqual(['libssl-dev']);
    expect(m('linux-headers')?.packages).toEqual(['linux-libc-dev']);
    expect(m('gettext-dev')?.packages).toEqual(['gettext', 'autopoint']);
    expect(m('glib-dev')?.packages).toEqual(['libglib2.0-dev']);
    expect(m('scanelf')?.packages).toEqual(['pax-utils']);
    expect(m('wolfi-base')?.packages).toEqual([]);
    expect(m('wolfi-baselayout')?.packages).toEqual([]);
    const go = m('go-1.27');
    expect(go?.packages).toEqual(['golang-go']);
    expect(go?.warning).toBe('go-1.27: asks for Go 1.27; Debian bookworm has Go 1.19 (golang-go)');
    expect(m('python-3.12-dev')?.packages).toEqual(['python3-dev']);
    expect(m('ruby-3.2')?.warning).toMatch(/Ruby 3\.2; Debian bookworm has Ruby 3\.1/);
    expect(m('py3-supported-pip')?.packages).toEqual(['python3-pip']);
    expect(m('py3.12-setuptools')?.packages).toEqual(['python3-setuptools']);
    expect(m('py3-supported-build-base')?.packages).toContain('python3-dev');
    expect(m('python-3.11')?.warning).toBeUndefined();
    expect(m('no-such-thing-dev')).toBeUndefined();
  });

  it('a --package-map file extends and overrides it; bad files name file:line:col', async () => {
    const dir = await tempDir();
    const file = join(dir, 'map.yaml');
    await writeFile(file, 'zlib-dev: [zlib1g-dev, libz-mingw-w64-dev]\nbusybox: []\nlibfrob: [libfrob-dev]\n');
    const map = await packageMapFor(file);
    expect(mapPackageName(map, 'busybox', 'bookworm')).toMatchObject({ packages: [], source: `${file}:2:1` });
    expect(mapPackageName(map, 'zlib-dev', 'bookworm')?.packages).toEqual(['zlib1g-dev', 'libz-mingw-w64-dev']);
    expect(mapPackageName(map, 'samurai', 'bookworm')?.source).toBe('built-in map');
    expect(map.digest).not.toBe((await builtinPackageMap()).digest);

    // A target the suite lacks: the map file's line.
    const err = (() => {
      try {
        assignNames({ world: ['libfrob'], apkHas: () => false, base: new Map(), map, suite: 'bookworm', suiteNames: bookworm });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`${file}:3:1: libfrob: Debian bookworm has no package libfrob-dev`);

    await writeFile(file, 'zlib-dev: [zlib1g-dev\n');
    await expect(packageMapFor(file)).rejects.toThrow(new RegExp(`^${file}:\\d+:\\d+: `));
    await writeFile(file, 'zlib-dev:\n  - Zlib1g Dev\n');
    await expect(packageMapFor(file)).rejects.toThrow(`${file}:2:5: zlib-dev[0]: not a Debian package name`);
    await writeFile(file, '- a\n');
    await expect(packageMapFor(file)).rejects.toThrow(`${file}:1:1: a package map is a YAML map`);
  });
});

describe('assigning names on a Debian base', () => {
  it('APK repositories win, then the base (with cmd:/pc:/so:), then the map', async () => {
    const map = await builtinPackageMap();
    const base = new Map<string, string | undefined>([['bash', '5.2'], ['cmd:ninja', undefined], ['pc:zlib', undefined], ['zlib1g', '1:1.2.13']]);
    const a = assignNames({
      world: ['git', 'bash', 'ninja', 'zlib', 'zlib-dev', 'build-base', 'wolfi-base', 'libgreet>=1.0'],
      apkHas: (n) => n === 'libgreet' || n === 'git',
      base,
      map,
      suite: 'bookworm',
      suiteNames: bookworm,
    });
    expect(a.apk).toEqual(['git', 'libgreet>=1.0']);
    expect([...a.fromBase]).toEqual([['bash', 'bash'], ['ninja', 'cmd:ninja'], ['zlib', 'pc:zlib']]);
    expect(a.mapped.get('zlib-dev')).toEqual({ packages: ['zlib1g-dev'], source: 'built-in map' });
    expect(a.mapped.get('wolfi-base')?.packages).toEqual([]);
    expect(a.install).toEqual(['build-essential', 'zlib1g-dev']);
  });

  it('one error lists every unmapped name with who asked and the closest Debian names', async () => {
    const map = await builtinPackageMap();
    let err: unknown;
    try {
      assignNames({
        world: ['libxml-dev', 'zlib-dev', 'frobnicate'],
        origins: { 'libxml-dev': ['recipe.yaml:12:7 environment.contents.packages'] },
        purpose: 'test',
        apkHas: () => false,
        base: new Map(),
        map,
        suite: 'bookworm',
        suiteNames: bookworm,
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnmappedNamesError);
    const e = err as UnmappedNamesError;
    expect(e.message).toBe('cannot make the test environment on Debian bookworm: no APK repository, base package or map entry for libxml-dev, frobnicate');
    expect(e.details[0]).toMatch(/^libxml-dev: required by recipe\.yaml:12:7 environment\.contents\.packages; closest Debian packages: libxml2-dev/);
    expect(e.details[1]).toMatch(/^frobnicate: required by the test environment/);
    expect(e.details.at(-1)).toMatch(/--package-map/);
  });
});

describe('needs met by the base', () => {
  it('a need is satisfied by cmd:/pc:/so: provides; an unsatisfied one names who asked', () => {
    const base = new Map<string, string | undefined>([['cmd:git', undefined], ['so:libz.so.1', undefined]]);
    const r = resolve({ world: ['git', 'libz.so.1'], repositories: [], arch: 'x86_64', base });
    expect(r.fromBase).toEqual(['cmd:git', 'so:libz.so.1']);
    expect(() =>
      resolve({
        world: ['ninja'],
        repositories: [],
        arch: 'x86_64',
        base,
        origins: { ninja: ['recipe.yaml:30:9 uses: cmake/configure (needs.packages)'] },
        purpose: 'test',
      }),
    ).toThrow(
      expect.objectContaining({
        message: 'cannot resolve the test environment: no package provides ninja',
        details: ['ninja: no such package (required by recipe.yaml:30:9 uses: cmake/configure (needs.packages))', 'repositories searched: (no repositories)'],
      }),
    );
  });
});
