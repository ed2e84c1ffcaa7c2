import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real sandboxes, real VMs and real compression: generous per-test budgets, never absolute-time asserts.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
  },
});
