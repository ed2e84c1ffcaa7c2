// builder doctor: each diagnosis (settings from a /proc/sys tree the test writes, tools on an empty PATH,
// mirrors served on 127.0.0.1 or refused), and the real command on this host, text and JSON.
import { createServer } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkBwrap, checkMirror, checkMmdebstrap, checkNode, checkQemu, checkSpace, checkUserNamespaces } from '../../src/doctor/checks.ts';
import { mirrorsOf } from '../../src/doctor/doctor.ts';
import { builder, hasStackTrace } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

async function procSys(dir: string, values: Record<string, string>): Promise<string> {
  for (const [key, value] of Object.entries(values)) {
    const file = join(dir, ...key.split('.'));
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, `${value}\n`);
  }
  return dir;
}

describe('doctor checks', () => {
  it('Node: 22.6 and newer pass', () => {
    expect(checkNode('22.6.0').status).toBe('ok');
    expect(checkNode('24.1.0').status).toBe('ok');
    const old = checkNode('20.11.1');
    expect(old).toMatchObject({ status: 'fail', detail: 'Node.js 20.11.1 is older than 22.6 (no type stripping)' });
    expect(old.fix).toContain('Node.js 22');
  });

  it("user namespaces: Ubuntu's AppArmor restriction, Debian's clone switch and max_user_namespaces, each with its sysctl", async () => {
    const ubuntu = await procSys(await tempDir(), { 'kernel.apparmor_restrict_unprivileged_userns': '1', 'user.max_user_namespaces': '15000' });
    const restricted = await checkUserNamespaces({ procSys: ubuntu, uid: 1000 });
    expect(restricted.status).toBe('fail');
    expect(restricted.detail).toContain('kernel.apparmor_restrict_unprivileged_userns = 1');
    expect(restricted.fix).toContain('sysctl -w kernel.apparmor_restrict_unprivileged_userns=0');
    expect((await checkUserNamespaces({ procSys: ubuntu, uid: 0 })).status).toBe('ok');

    const debian = await procSys(await tempDir(), { 'kernel.unprivileged_userns_clone': '0' });
    expect((await checkUserNamespaces({ procSys: debian, uid: 1000 })).fix).toBe('sysctl -w kernel.unprivileged_userns_clone=1');
    const off = await procSys(await tempDir(), { 'user.max_user_namespaces': '0' });
    expect(await checkUserNamespaces({ procSys: off, uid: 0 })).toMatchObject({ status: 'fail', fix: expect.stringContaining('sysctl -w user.max_user_namespaces=15000') });
    const fine = await procSys(await tempDir(), { 'user.max_user_namespaces': '100', 'kernel.apparmor_restrict_unprivileged_userns': '0' });
    expect(await checkUserNamespaces({ procSys: fine, uid: 1000 })).toEqual({ id: 'userns', status: 'ok', detail: 'unprivileged user namespaces allowed (max 100)' });
  });

  it('missing tools name the package to install', async () => {
    const empty = await tempDir();
    expect(await checkBwrap(join(empty, 'bwrap'))).toMatchObject({ status: 'fail', fix: 'apt-get install --no-install-recommends bubblewrap' });
    expect(await checkQemu(empty)).toMatchObject({ status: 'fail', fix: expect.stringContaining('apt-get install --no-install-recommends qemu-system-x86') });
    expect(await checkMmdebstrap(empty)).toMatchObject({ status: 'fail', fix: 'apt-get install --no-install-recommends mmdebstrap' });
    expect((await checkBwrap()).status).toBe('ok');
  });

  it('cache space: a cache that does not exist yet is measured on its parent; low space warns or fails', async () => {
    const dir = await tempDir();
    const ok = await checkSpace('root-cache', join(dir, 'not/yet'), { warn: 1, fail: 0 });
    expect(ok.status).toBe('ok');
    expect(ok.detail).toContain(`(on ${dir}'s filesystem)`);
    const low = await checkSpace('root-cache', dir, { warn: Number.MAX_SAFE_INTEGER, fail: Number.MAX_SAFE_INTEGER });
    expect(low).toMatchObject({ status: 'fail', fix: 'builder cache prune --older-than 30d, or --root-cache-dir on a larger disk' });
    expect((await checkSpace('cache', dir, { warn: Number.MAX_SAFE_INTEGER, fail: 0 })).status).toBe('warn');
  });

  it('mirrors: an answering server is reached, a refused port and a 5xx are failures', async () => {
    const server = createServer((req, res) => {
      res.statusCode = req.url?.startsWith('/broken') ? 502 : 200;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    try {
      expect((await checkMirror(`${base}/debian`)).status).toBe('ok');
      expect(await checkMirror(`${base}/broken`)).toMatchObject({ status: 'fail', detail: 'HTTP 502 (server error)' });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
    const refused = await checkMirror(`${base}/debian`);
    expect(refused.status).toBe('fail');
    expect(refused.detail).toMatch(/unreachable: .*ECONNREFUSED/);
  });

  it("takes a recipe's Debian mirror and HTTP repositories", () => {
    expect(mirrorsOf(['debian:bookworm:gcc@http://mirror.test/debian', './local', 'https://apk.test/os'], '/w')).toEqual(['http://mirror.test/debian', 'https://apk.test/os']);
  });
});

describe('builder doctor', () => {
  it('prints every check; --json is one document; a failing check exits 1 with the JSON still printed', async () => {
    const dir = await tempDir();
    const flags = ['--root-cache-dir', join(dir, 'roots'), '--cache-dir', join(dir, 'cache'), '--mirror', 'http://127.0.0.1:9/refused'];
    const json = await builder(['doctor', '--json', ...flags]);
    expect(hasStackTrace(json.all)).toBe(false);
    const report = JSON.parse(json.stdout) as { ok: boolean; checks: { id: string; status: string; fix?: string }[] };
    expect(report.checks.map((c) => c.id)).toEqual([
      'node', 'userns', 'bwrap', 'qemu', 'kernel', 'kvm', 'mmdebstrap', 'space:root-cache', 'space:cache', 'space:apk-cache', 'mirror:http://127.0.0.1:9/refused',
    ]);
    expect(report.ok).toBe(false);
    expect(report.checks.at(-1)).toMatchObject({ status: 'fail', fix: 'check the network and DNS, or choose another mirror' });
    expect(json.exitCode).toBe(1);
    expect(json.stderr).toContain('error: doctor: mirror:http://127.0.0.1:9/refused failed');

    const text = await builder(['doctor', ...flags]);
    expect(text.stdout).toMatch(/^✔ node: Node\.js /m);
    expect(text.stdout).toMatch(/^✖ mirror:http:\/\/127\.0\.0\.1:9\/refused: unreachable/m);
    expect(text.stdout).toMatch(/^ {4}fix: check the network/m);
    expect(text.stdout).toMatch(/1 check\(s\) failed/);
  }, 60_000);
});
