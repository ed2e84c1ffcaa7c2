// A build that fails is still recorded: the blocked connection that broke it shows up in the error and the
// report is written.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEBIAN_BASE, SHARED_ROOT_CACHE } from '../environment/shared-cache.ts';
import { builder } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';
import { SHARED_CACHE, testKernel } from '../runners/qemu/helpers.ts';

const tempDir = useTempDirs();

describe('a failed VM build', () => {
  it('reports the connection attempt that failed it', async () => {
    const kernel = await testKernel();
    const dir = await tempDir();
    await writeFile(
      join(dir, 'net.yaml'),
      "package: {name: netfail, version: \"1\"}\npipeline:\n  - name: connect\n    runs: bash -c 'exec 3<>/dev/tcp/10.0.2.2/9'\n",
    );
    const out = join(dir, 'out');
    const r = await builder(
      ['build', join(dir, 'net.yaml'), '--runner', 'qemu', '--base', DEBIAN_BASE, '--root-cache-dir', SHARED_ROOT_CACHE, '--vm-artifact-dir', SHARED_CACHE, '--cache-dir', join(dir, 'cache'), '--out-dir', out],
      { env: { QEMU_KERNEL_IMAGE: kernel.image, QEMU_KERNEL_MODULES: kernel.modules } },
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/step "connect" of netfail .* failed/);
    expect(r.stderr).toMatch(/observability: 10\.0\.2\.2:9\/tcp .* by bash: blocked: network disabled/);
    const report = JSON.parse(await readFile(join(out, 'x86_64/netfail-1-r0.observability.json'), 'utf8')) as object;
    expect(JSON.stringify(report)).toContain('10.0.2.2');
  });
});
