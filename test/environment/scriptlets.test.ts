// Install scriptlets run in a sandbox sealed like a build step's: seccomp filter, pinned capabilities, no
// network, uid 0 of the root being made.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RootProvider } from '../../src/environment/root-provider.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { ARCH, buildRepo, makeKey } from './repo.ts';
import { DEBIAN_BASE, SHARED_ROOT_CACHE } from './shared-cache.ts';

const tempDir = useTempDirs();

// Docker's default capability set, as a CapEff mask (the same set a build step run as root gets).
const DOCKER_ROOT_CAPS = 0x00000000a80425fbn;

describe('install scriptlets', () => {
  it('run under the seccomp filter, with Docker root capabilities and no network', async () => {
    const dir = await tempDir();
    const key = await makeKey(join(dir, 'keys'));
    const repo = join(dir, 'repo');
    const probe = [
      'grep -E "^(Seccomp|CapEff|Uid):" /proc/self/status > /etc/seal',
      'echo "net: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\\n" " ")" >> /etc/seal',
      // unshare is one of the denied syscalls: EPERM, not a new namespace.
      'if unshare -U true 2>/dev/null; then echo unshare-allowed; else echo unshare-denied; fi >> /etc/seal',
    ].join('\n');
    await buildRepo(repo, [{ name: 'sealprobe', version: '1-r0', scriptlets: { 'post-install': probe } }], key.key);
    const provider = new RootProvider({ cacheDir: SHARED_ROOT_CACHE });
    const root = await provider.prepare(
      { repositories: [DEBIAN_BASE, repo], keyring: [key.publicPath], packages: ['sealprobe'], arch: ARCH, runScriptlets: true },
      () => undefined,
    );
    onTestFinished(() => provider.cache.remove(root.digest!));
    const seal = await readFile(join(root.directory!, 'etc/seal'), 'utf8');
    expect(seal).toMatch(/^Seccomp:\s+2$/m);
    expect(seal).toMatch(/^Uid:\s+0\s+0\s+0\s+0$/m);
    const capEff = /^CapEff:\s+([0-9a-f]+)$/m.exec(seal)?.[1];
    expect(capEff === undefined ? undefined : BigInt(`0x${capEff}`)).toBe(DOCKER_ROOT_CAPS);
    // Only loopback in the network namespace.
    expect(seal).toMatch(/^net: lo $/m);
    expect(seal).toContain('unshare-denied');
  }, 300_000);
});
