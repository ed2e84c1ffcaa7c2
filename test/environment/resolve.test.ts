import { describe, expect, it } from 'vitest';
import { parseDependency, resolve, ResolveError, type Resolvable } from '../../src/environment/apk/resolve.ts';

function pkg(name: string, version: string, extra: Partial<Resolvable> = {}): Resolvable {
  return { pkgname: name, pkgver: version, arch: 'x86_64', depend: [], provides: [], ...extra };
}

function names(world: string[], packages: Resolvable[][], base?: Map<string, string | undefined>): string[] {
  const result = resolve({
    world,
    arch: 'x86_64',
    repositories: packages.map((p, i) => ({ label: `repo${i}`, packages: p })),
    base,
  });
  return result.install.map((r) => `${r.pkg.pkgname}-${r.pkg.pkgver}`);
}

function failure(fn: () => unknown): ResolveError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ResolveError) return err;
    throw err;
  }
  throw new Error('expected a ResolveError');
}

describe('parseDependency', () => {
  it('reads names, operators, versions and conflicts', () => {
    expect(parseDependency('foo')).toMatchObject({ name: 'foo', conflict: false });
    expect(parseDependency('foo>=1.2-r0')).toMatchObject({ name: 'foo', op: '>=', version: '1.2-r0' });
    expect(parseDependency('foo<2')).toMatchObject({ name: 'foo', op: '<', version: '2' });
    expect(parseDependency('foo~1.2')).toMatchObject({ name: 'foo', op: '~', version: '1.2' });
    expect(parseDependency('foo=~1.2')).toMatchObject({ name: 'foo', op: '~', version: '1.2' });
    expect(parseDependency('so:libc.so.6')).toMatchObject({ name: 'so:libc.so.6' });
    expect(parseDependency('!bar')).toMatchObject({ name: 'bar', conflict: true });
    expect(parseDependency('baz@edge>1')).toMatchObject({ name: 'baz', op: '>', version: '1' });
    expect(() => parseDependency('foo>=not a version')).toThrow(/malformed dependency/);
    expect(() => parseDependency('>=1')).toThrow(/malformed dependency/);
  });
});

describe('resolve', () => {
  const repo = [
    pkg('foo', '1.0-r0'),
    pkg('foo', '1.10-r0'),
    pkg('foo', '1.2-r0'),
    pkg('foo', '2.0_rc1-r0'),
    pkg('foo', '1.2.5-r1'),
  ];

  it('picks the highest version by apk ordering', () => {
    expect(names(['foo'], [repo])).toEqual(['foo-2.0_rc1-r0']);
  });

  it('honours =, <, >=, ~ constraints', () => {
    expect(names(['foo=1.2-r0'], [repo])).toEqual(['foo-1.2-r0']);
    expect(names(['foo<2'], [repo])).toEqual(['foo-1.10-r0']);
    expect(names(['foo>=1.2.5'], [repo])).toEqual(['foo-2.0_rc1-r0']);
    expect(names(['foo~1.2'], [repo])).toEqual(['foo-1.2.5-r1']);
    expect(names(['foo<1.2', 'foo>1.0'], [[...repo, pkg('foo', '1.1-r0')]])).toEqual(['foo-1.1-r0']);
  });

  it('follows dependencies, dependencies first', () => {
    const packages = [
      pkg('app', '1-r0', { depend: ['libb', 'so:liba.so.1'] }),
      pkg('liba', '3-r0', { provides: ['so:liba.so.1=3'] }),
      pkg('libb', '2-r0', { depend: ['liba>=3'] }),
    ];
    expect(names(['app'], [packages])).toEqual(['liba-3-r0', 'libb-2-r0', 'app-1-r0']);
  });

  it('resolves so:, cmd: and pc: virtuals through provides', () => {
    const packages = [
      pkg('tool', '1-r0', { depend: ['cmd:sh', 'pc:zlib', 'so:libz.so.1'] }),
      pkg('busybox', '1.36-r0', { provides: ['cmd:sh=1.36-r0'] }),
      pkg('zlib', '1.3-r0', { provides: ['so:libz.so.1=1.3'] }),
      pkg('zlib-dev', '1.3-r0', { provides: ['pc:zlib=1.3'], depend: ['zlib'] }),
    ];
    expect(names(['tool'], [packages]).sort()).toEqual(['busybox-1.36-r0', 'tool-1-r0', 'zlib-1.3-r0', 'zlib-dev-1.3-r0']);
  });

  it('prefers the provider with the higher provider_priority, then the higher version', () => {
    const providers = [
      pkg('openssl', '3.1-r0', { provides: ['ssl=1'], providerPriority: 10 }),
      pkg('libressl', '3.8-r0', { provides: ['ssl=1'], providerPriority: 20 }),
      pkg('boringssl', '9-r0', { provides: ['ssl=1'] }),
    ];
    expect(names(['ssl'], [providers])).toEqual(['libressl-3.8-r0']);
    const unprioritised = [pkg('a', '1-r0', { provides: ['virt=1'] }), pkg('b', '1-r0', { provides: ['virt=2'] })];
    expect(names(['virt'], [unprioritised])).toEqual(['b-1-r0']);
  });

  it('uses a package already chosen when it provides the name', () => {
    const packages = [
      pkg('app', '1-r0', { depend: ['ssl'] }),
      pkg('openssl', '3-r0', { provides: ['ssl=1'] }),
      pkg('libressl', '3-r0', { provides: ['ssl=1'], providerPriority: 50 }),
    ];
    expect(names(['openssl', 'app'], [packages]).sort()).toEqual(['app-1-r0', 'openssl-3-r0']);
  });

  it('prefers the earlier repository on equal versions and ignores other architectures', () => {
    const first = [pkg('foo', '1-r0', { depend: ['first'] }), pkg('first', '1-r0')];
    const second = [pkg('foo', '1-r0', { depend: ['second'] }), pkg('second', '1-r0'), pkg('foo', '9-r0', { arch: 'aarch64' })];
    expect(names(['foo'], [first, second]).sort()).toEqual(['first-1-r0', 'foo-1-r0']);
  });

  it('re-chooses a version when a later dependency constrains it', () => {
    const packages = [
      pkg('lib', '1-r0'),
      pkg('lib', '2-r0'),
      pkg('app', '1-r0', { depend: ['lib', 'plugin'] }),
      pkg('plugin', '1-r0', { depend: ['lib<2'] }),
    ];
    expect(names(['app'], [packages])).toEqual(['lib-1-r0', 'plugin-1-r0', 'app-1-r0']);
  });

  it('installs dependency cycles once, in a stable order', () => {
    const packages = [
      pkg('a', '1-r0', { depend: ['b'] }),
      pkg('b', '1-r0', { depend: ['c'] }),
      pkg('c', '1-r0', { depend: ['a', 'd'] }),
      pkg('d', '1-r0'),
    ];
    const order = names(['a'], [packages]);
    expect(order).toEqual(['d-1-r0', 'a-1-r0', 'b-1-r0', 'c-1-r0']);
    expect(names(['c'], [packages])).toEqual(order);
  });

  it('counts names the base provides as installed', () => {
    const packages = [pkg('greeter', '1-r0', { depend: ['so:libc.so.6', 'so:libgreet.so.1'] }), pkg('libgreet', '1-r0', { provides: ['so:libgreet.so.1=1'] })];
    const base = new Map<string, string | undefined>([['so:libc.so.6', undefined]]);
    const result = resolve({ world: ['greeter'], arch: 'x86_64', repositories: [{ label: 'r', packages }], base });
    expect(result.install.map((r) => r.pkg.pkgname)).toEqual(['libgreet', 'greeter']);
    expect(result.fromBase).toEqual(['so:libc.so.6']);
  });

  it('lists every missing name with who needs it and the repositories searched', () => {
    const packages = [pkg('app', '1-r0', { depend: ['so:libmissing.so.2', 'helper'] })];
    const err = failure(() =>
      resolve({ world: ['app', 'nosuch', 'cmd:ghost'], arch: 'x86_64', repositories: [{ label: '/repo/x86_64', packages }, { label: 'http://127.0.0.1:9/x86_64', packages: [] }] }),
    );
    expect(err.missing.sort()).toEqual(['cmd:ghost', 'helper', 'nosuch', 'so:libmissing.so.2']);
    expect(err.message).toContain('nosuch');
    expect(err.message).toContain('so:libmissing.so.2');
    expect(err.problems.join('\n')).toContain('so:libmissing.so.2: no such package (required by app-1-r0)');
    expect(err.details.at(-1)).toBe('repositories searched: /repo/x86_64, http://127.0.0.1:9/x86_64');
  });

  it('reports conflicting constraints with both requesters and what exists', () => {
    const packages = [pkg('lib', '1-r0'), pkg('lib', '2-r0'), pkg('a', '1-r0', { depend: ['lib>=2'] }), pkg('b', '1-r0', { depend: ['lib<2'] })];
    const err = failure(() => names(['a', 'b'], [packages]));
    const text = err.problems.join('\n');
    expect(text).toContain('lib>=2 (required by a-1-r0)');
    expect(text).toContain('lib<2 (required by b-1-r0)');
    expect(text).toContain('available: 1-r0, 2-r0');
  });

  it('reports an unsatisfiable version constraint', () => {
    const err = failure(() => names(['foo>=3'], [repo]));
    expect(err.problems[0]).toMatch(/^foo: no version satisfies foo>=3 \(required by the build environment\)/);
  });

  it('refuses a package that a selected package conflicts with', () => {
    const packages = [pkg('a', '1-r0', { depend: ['!b'] }), pkg('b', '1-r0'), pkg('c', '1-r0', { depend: ['b'] })];
    const err = failure(() => names(['a', 'c'], [packages]));
    expect(err.problems.join('\n')).toContain('b: a-1-r0 conflicts with it (!b), but b-1-r0 is selected (required by c-1-r0)');
    expect(names(['a'], [packages])).toEqual(['a-1-r0']);
  });
});
