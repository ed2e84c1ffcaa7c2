// The Debian base used by the tests that need one: made once by mmdebstrap (network to the Debian archive)
// into a cache kept between test files and runs, so the suite pays for it once. Keep the package list small.
import { mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { RootProvider } from '../../src/environment/root-provider.ts';

export const DEBIAN_BASE = 'debian:bookworm:gcc,libc6-dev,make';

/** Deliberately not removed after the tests: re-creating the base costs ~40 s of downloads. */
export const SHARED_ROOT_CACHE = process.env.BUILDER_TEST_ROOT_CACHE ?? join(tmpdir(), 'builder-test-root-cache');

/** The plain `debian:bookworm` base (apt, no extra packages): layered tests and benches start from it. */
export const PLAIN_DEBIAN_BASE = 'debian:bookworm';

/**
 * Makes (once) the plain bookworm base in the shared cache and hard-links it into the private root cache
 * `cacheDir`, so a test's layers and download counts are its own. Layers only read the base.
 */
export async function seedPlainBase(cacheDir: string): Promise<string> {
  const shared = new RootProvider({ cacheDir: SHARED_ROOT_CACHE });
  const root = await shared.prepare({ repositories: [PLAIN_DEBIAN_BASE], keyring: [], packages: [], arch: 'x86_64' }, () => undefined);
  const meta = JSON.parse(await readFile(join(SHARED_ROOT_CACHE, 'roots', root.digest!, 'root.json'), 'utf8')) as { inputs: { base: { digest: string } } };
  const baseDigest = meta.inputs.base.digest;
  await mkdir(join(cacheDir, 'roots'), { recursive: true });
  await execa('cp', ['-al', join(SHARED_ROOT_CACHE, 'roots', baseDigest), join(cacheDir, 'roots', baseDigest)]);
  return baseDigest;
}
