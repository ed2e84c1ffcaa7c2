import { lstat, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { groupText, passwdText, resolveAccounts, writeRootFiles } from '../../src/environment/accounts.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

describe('accounts', () => {
  it('has root, build (1000, /home/build) and nobody by default, running as build', () => {
    const a = resolveAccounts(undefined);
    expect(a.users.map((u) => `${u.name}:${u.uid}:${u.gid}:${u.home}`)).toEqual(['root:0:0:/root', 'build:1000:1000:/home/build', 'nobody:65534:65534:/nonexistent']);
    expect(a.groups.map((g) => `${g.name}:${g.gid}:${g.members.join(',')}`)).toEqual(['root:0:', 'build:1000:build', 'nogroup:65534:']);
    expect(a.runAs).toEqual({ uid: 1000, gid: 1000 });
  });

  it('adds declared users and groups, replaces defaults of the same name, and resolves run-as', () => {
    const a = resolveAccounts({
      runAs: 'svc',
      users: [{ username: 'svc', uid: 500 }, { username: 'build', uid: 1001, gid: 1001 }],
      groups: [{ groupname: 'svc', gid: 500, members: ['svc'] }],
    });
    expect(a.users.find((u) => u.name === 'svc')).toEqual({ name: 'svc', uid: 500, gid: 500, gecos: 'svc', home: '/home/svc', shell: '/bin/sh' });
    expect(a.users.find((u) => u.name === 'build')?.uid).toBe(1001);
    expect(a.runAs).toEqual({ uid: 500, gid: 500 });
    expect(resolveAccounts({ runAs: '0', users: [], groups: [] }).runAs).toEqual({ uid: 0, gid: 0 });
    expect(resolveAccounts({ runAs: 'root', users: [], groups: [] }).runAs).toEqual({ uid: 0, gid: 0 });
    expect(resolveAccounts({ runAs: '4242', users: [], groups: [] }).runAs).toEqual({ uid: 4242, gid: 4242 });
  });

  it('names what is wrong with declared accounts', () => {
    expect(() => resolveAccounts({ runAs: 'ghost', users: [], groups: [] })).toThrow('environment.accounts.run-as: run-as "ghost" names no user of environment.accounts.users');
    // melange's rule, the compiler's too: a default account of the base (nobody) is not a declared user.
    expect(() => resolveAccounts({ runAs: 'nobody', users: [], groups: [] })).toThrow('run-as "nobody" names no user');
    expect(resolveAccounts({ runAs: 'nobody', users: [{ username: 'nobody', uid: 65534 }], groups: [] }).runAs).toEqual({ uid: 65534, gid: 65534 });
    expect(() => resolveAccounts({ users: [{ username: 'x' }], groups: [] })).toThrow('user "x" needs a uid');
    expect(() => resolveAccounts({ users: [], groups: [{ groupname: 'g', members: [] }] })).toThrow('group "g" needs a gid');
    expect(() => resolveAccounts({ users: [{ username: 'x', uid: 1, homedir: '/a:b' }], groups: [] })).toThrow("may not contain ':'");
  });

  it('merges with a base passwd/group: base defaults stay, declared names replace', () => {
    const base = 'root:*:0:0:root:/root:/bin/bash\ndaemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbuild:x:1500:1500::/b:/bin/false\n';
    const a = resolveAccounts(undefined);
    const text = passwdText(a.users, base, a.soft);
    expect(text).toBe(
      'root:*:0:0:root:/root:/bin/bash\ndaemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbuild:x:1000:1000:builder:/home/build:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
    );
    const declaredRoot = resolveAccounts({ users: [{ username: 'root', uid: 0, shell: '/bin/zsh' }], groups: [] });
    expect(passwdText(declaredRoot.users, base, declaredRoot.soft)).toContain('root:x:0:0:root:/root:/bin/zsh\n');
    expect(groupText(a.groups, 'root:x:0:\n', a.soft)).toBe('root:x:0:\nbuild:x:1000:build\nnogroup:x:65534:\n');
  });

  it('writes the files and mount points into a root, replacing links rather than writing through them', async () => {
    const root = await tempDir();
    const outside = await tempDir();
    await mkdir(join(root, 'etc'));
    await writeFile(join(outside, 'resolv.conf'), 'host resolver\n');
    await symlink(join(outside, 'resolv.conf'), join(root, 'etc/resolv.conf'));
    await writeRootFiles(root, resolveAccounts(undefined));
    expect(await readFile(join(outside, 'resolv.conf'), 'utf8')).toBe('host resolver\n');
    expect((await lstat(join(root, 'etc/resolv.conf'))).isFile()).toBe(true);
    expect(await readFile(join(root, 'etc/hosts'), 'utf8')).toMatch(/^127\.0\.0\.1\tlocalhost/);
    expect((await stat(join(root, 'tmp'))).mode & 0o7777).toBe(0o1777);
    for (const d of ['home/build', 'var/cache/melange', 'dev', 'proc', 'sys', 'root']) expect((await stat(join(root, d))).isDirectory()).toBe(true);
  });

  it('refuses a root whose mount point is a file', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'home'));
    await writeFile(join(root, 'home/build'), 'not a dir');
    await expect(writeRootFiles(root, resolveAccounts(undefined))).rejects.toThrow("the build root's /home/build exists and is not a directory");
  });
});
