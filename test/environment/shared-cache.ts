// The Debian base used by the tests that need one: made once by mmdebstrap (network to the Debian archive)
// into a cache kept between test files and runs, so the suite pays for it once. Keep the package list small.
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DEBIAN_BASE = 'debian:bookworm:gcc,libc6-dev,make';

/** Deliberately not removed after the tests: re-creating the base costs ~40 s of downloads. */
export const SHARED_ROOT_CACHE = process.env.BUILDER_TEST_ROOT_CACHE ?? join(tmpdir(), 'builder-test-root-cache');
