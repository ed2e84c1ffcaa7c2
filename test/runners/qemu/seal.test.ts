// The sealed VM artifact store: digests recorded and checked, tampering detected and rebuilt, user-given
// kernels re-verified when they change, and — with real bwrap and a real VM — a Bubblewrap build step that tries
// to overwrite every VM artifact through /var/cache/melange cannot change what the next VM boots.
import { copyFile, cp, mkdir, open, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BubblewrapRunner } from '../../../src/runners/bubblewrap.ts';
import { locateKernel } from '../../../src/runners/qemu/kernel.ts';
import { pvhKernel } from '../../../src/runners/qemu/pvh.ts';
import { QemuRunner } from '../../../src/runners/qemu/runner.ts';
import { contentDigest, openArtifactDir, refuseSandboxWritable, sealArtifact, usableArtifact, verifyArtifact } from '../../../src/runners/qemu/seal.ts';
import { kernelEnv, leftovers, makeTempDir, podFor, SHARED_CACHE, testKernel, tinyRoot } from './helpers.ts';

/** Every artifact file in the store (not the records or the source-digest memos), relative to it. */
async function artifacts(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || entry.name.endsWith('.seal.json')) continue;
    const rel = path.relative(dir, path.join(entry.parentPath, entry.name));
    if (!rel.startsWith('sources/')) out.push(rel);
  }
  return out.sort();
}

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir('builder-seal-test-');
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('seal records', () => {
  it('digests a sparse file like the same bytes written out', async () => {
    const sparse = path.join(dir, 'sparse');
    const dense = path.join(dir, 'dense');
    await writeFile(sparse, '');
    await truncate(sparse, 80 * 1024 * 1024);
    const fh = await open(sparse, 'r+');
    await fh.write(Buffer.from('data in the middle'), 0, undefined, 40 * 1024 * 1024 + 17);
    await fh.close();
    const bytes = Buffer.alloc(80 * 1024 * 1024);
    bytes.write('data in the middle', 40 * 1024 * 1024 + 17);
    await writeFile(dense, bytes);
    expect(await contentDigest(sparse)).toBe(await contentDigest(dense));
    await writeFile(dense, Buffer.alloc(80 * 1024 * 1024));
    expect(await contentDigest(sparse)).not.toBe(await contentDigest(dense));
  });

  it('finds a same-size overwrite even with the mtime put back, and the caller rebuilds', async () => {
    const file = path.join(dir, 'artifact');
    await writeFile(file, 'genuine bytes');
    await sealArtifact(file);
    expect(await verifyArtifact(file)).toEqual({ state: 'ok' });
    const before = await stat(file);
    await writeFile(file, 'Genuine bytes');
    await utimes(file, before.atime, before.mtime);
    const verdict = await verifyArtifact(file);
    expect(verdict.state).toBe('tampered');
    const logs: string[] = [];
    expect(await usableArtifact(file, 'test artifact', (l) => logs.push(l))).toBe(false);
    expect(logs.join('\n')).toMatch(/test artifact .* does not match its record \(its SHA-256 is .*\); rebuilding it/);
    expect(await stat(file).catch(() => undefined)).toBeUndefined();
    // A file nobody recorded is not trusted either.
    await writeFile(file, 'unrecorded');
    expect(await verifyArtifact(file)).toEqual({ state: 'tampered', reason: 'it has no digest record' });
  });

  it('refuses an artifact dir that overlaps the melange cache, and boot files inside that cache', async () => {
    const cache = path.join(dir, 'melange');
    await mkdir(cache);
    await expect(openArtifactDir(path.join(cache, 'vm'), [cache])).rejects.toThrow(/overlaps .*melange, which build sandboxes can write/);
    await expect(openArtifactDir(dir, [cache])).rejects.toThrow(/overlaps/);
    await expect(refuseSandboxWritable(path.join(cache, 'vmlinuz'), '--kernel', [cache])).rejects.toThrow(/--kernel: .* is inside .*; refusing to boot it/);
    await openArtifactDir(path.join(dir, 'apart'), [cache]);
    expect((await stat(path.join(dir, 'apart'))).mode & 0o777).toBe(0o700);
  });

  it('extracts a user kernel changed in place again, even with its old mtime', async () => {
    const kernel = await locateKernel({ env: kernelEnv(await testKernel()) });
    const boot = path.join(dir, 'userkernel');
    await mkdir(boot);
    const image = path.join(boot, path.basename(kernel.image));
    await copyFile(kernel.image, image);
    const config = (await readFile(path.join(path.dirname(kernel.image), `config-${kernel.release}`)).catch(() => undefined)) ?? (await readFile(`/boot/config-${kernel.release}`));
    await writeFile(path.join(boot, `config-${kernel.release}`), config);
    const store = path.join(dir, 'store');
    const spec = { ...kernel, image };
    const first = await pvhKernel(spec, store);
    expect(first).toMatchObject({ extracted: true });
    expect(await pvhKernel(spec, store)).toEqual({ path: first.path, extracted: false });
    // One byte of the setup header's padding changes: same size, mtime put back.
    const st = await stat(image);
    const fh = await open(image, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 0x1f0);
    await fh.write(Buffer.from([b[0]! ^ 0xff]), 0, 1, 0x1f0);
    await fh.close();
    await utimes(image, st.atime, st.mtime);
    const second = await pvhKernel(spec, store);
    expect(second).toMatchObject({ extracted: true });
    expect(second.path).not.toBe(first.path);
  });
});

describe('a Bubblewrap build cannot change what a VM boots', () => {
  it('overwrites nothing through /var/cache/melange; a host-side tamper is found and rebuilt', async () => {
    const root = await tinyRoot(dir);
    // Mount points Bubblewrap binds over the read-only root.
    for (const d of ['var/cache/melange', 'dev', 'proc', 'sys']) await mkdir(path.join(root, d), { recursive: true });
    const kernel = await testKernel();
    const store = path.join(dir, 'vm-artifacts');
    // Start from the shared store (copied: new inodes, so every record is checked against the content).
    await mkdir(store, { recursive: true });
    await cp(path.join(SHARED_CACHE, 'initramfs'), path.join(store, 'initramfs'), { recursive: true, filter: (src) => !src.includes('downloads') });
    const workspace = path.join(dir, 'workspace');
    await mkdir(path.join(workspace, 'melange-out'), { recursive: true });
    const tempParent = path.join(dir, 'tmp');
    await mkdir(tempParent);
    const logs: string[] = [];
    const qemu = new QemuRunner({ artifactDir: store, env: kernelEnv(kernel), accel: 'auto', bootTimeoutMs: 120_000, tempDir: tempParent, debug: true, log: (l) => logs.push(l) });
    const pod = podFor(root, workspace);
    await mkdir(pod.cacheDir, { recursive: true });

    const boot = async (): Promise<string> => {
      logs.length = 0;
      await qemu.start(pod);
      try {
        const chunks: Buffer[] = [];
        const code = await qemu.run(['/bin/sh', '-c', 'echo booted'], { env: { PATH: '/bin' }, workdir: '/home/build', onOutput: (_s, c) => chunks.push(c) });
        expect(code).toBe(0);
        expect(Buffer.concat(chunks).toString()).toBe('booted\n');
        // The initrd with the run's host key never has a name: only console logs are in the private dir.
        for (const d of await readdir(tempParent)) expect((await readdir(path.join(tempParent, d))).filter((n) => !n.startsWith('console-'))).toEqual([]);
      } finally {
        await qemu.terminate();
      }
      return logs.find((l) => l.startsWith('qemu '))!;
    };

    const firstArgs = await boot();
    const files = await artifacts(store);
    for (const kind of ['initramfs/', 'kernels/', 'modules/', 'disks/']) expect(files.some((f) => f.startsWith(kind))).toBe(true);
    const genuine = new Map<string, string>();
    for (const f of files) genuine.set(f, await contentDigest(path.join(store, f)));

    // The step writes to every artifact's path through the cache (old layout and new), to its host path,
    // and over every file it can find in the cache.
    const targets = files.flatMap((f) => [`/var/cache/melange/${f}`, `/var/cache/melange/qemu/${f}`, path.join(store, f)]);
    const script = [
      'for t in "$@"; do mkdir -p "${t%/*}" 2>/dev/null; echo evil > "$t" 2>/dev/null; done',
      'find /var/cache/melange -type f | while read -r f; do echo evil > "$f"; done',
      'find /var/cache/melange -type f | wc -l',
    ].join('\n');
    const bwrap = new BubblewrapRunner();
    await bwrap.start(pod);
    const out: Buffer[] = [];
    try {
      expect(await bwrap.run(['/bin/sh', '-c', script, 'attack', ...targets], { env: { PATH: '/bin' }, workdir: '/home/build', onOutput: (_s, c) => out.push(c) })).toBe(0);
    } finally {
      await bwrap.terminate();
    }
    // The attack ran (the cache is full of its files) and reached none of the artifacts.
    expect(Number(Buffer.concat(out).toString().trim())).toBeGreaterThanOrEqual(files.length);
    for (const f of files) expect(await contentDigest(path.join(store, f))).toBe(genuine.get(f));

    // A write that does reach the store (from the host) is found before boot and the artifact rebuilt.
    const fragment = files.find((f) => f.startsWith('modules/'))!;
    const st = await stat(path.join(store, fragment));
    await writeFile(path.join(store, fragment), Buffer.alloc(st.size, 0x41));
    await utimes(path.join(store, fragment), st.atime, st.mtime);

    const secondArgs = await boot();
    expect(logs.join('\n')).toMatch(/modules fragment .* does not match its record .*; rebuilding it/);
    expect(logs.filter((l) => l.includes('does not match'))).toHaveLength(1);
    expect(await contentDigest(path.join(store, fragment))).toBe(genuine.get(fragment));
    // The same genuine files were booted, all from the store.
    const storeFiles = (args: string): string[] => [...args.matchAll(new RegExp(`${store}/[^ ,]+`, 'g'))].map((m) => m[0]);
    expect(storeFiles(secondArgs)).toEqual(storeFiles(firstArgs));
    expect(storeFiles(secondArgs).length).toBeGreaterThanOrEqual(2);
    for (const f of files) expect(await contentDigest(path.join(store, f))).toBe(genuine.get(f));
    expect(secondArgs).toContain(path.join(store, 'kernels'));
    expect(secondArgs).toContain(path.join(store, 'disks'));
    expect(secondArgs).not.toContain(pod.cacheDir);
    expect(await leftovers(tempParent)).toEqual([]);
  }, 240_000);
});
