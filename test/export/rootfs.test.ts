// export-rootfs: each format checked with its own tools (debugfs/e2fsck, dump.erofs/fsck.erofs, cpio -t),
// owners and modes kept, the --post-export hook, atomic content-addressed output; and the CLI end to end
// from an OCI image.
import { chmod, chown, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { exportRootfs } from '../../src/export/rootfs.ts';
import { builder } from '../helpers/cli.ts';
import { writeOciLayout } from '../helpers/oci-image.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const noLog = (): void => undefined;
const ROOT = process.getuid?.() === 0;
const SBIN = { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };

async function makeTree(dir: string): Promise<string> {
  const tree = join(dir, 'tree');
  await mkdir(join(tree, 'etc'), { recursive: true });
  await mkdir(join(tree, 'usr/bin'), { recursive: true });
  await writeFile(join(tree, 'etc/hello'), 'hello\n');
  await writeFile(join(tree, 'etc/secret'), 'secret\n');
  await chmod(join(tree, 'etc/secret'), 0o600);
  await writeFile(join(tree, 'usr/bin/su'), '#!/bin/sh\n');
  await chmod(join(tree, 'usr/bin/su'), 0o4755);
  await symlink('../etc/hello', join(tree, 'usr/hello'));
  if (ROOT) await chown(join(tree, 'etc/secret'), 1234, 5678);
  return tree;
}

const OWNER = ROOT ? [1234, 5678] : [process.getuid?.() ?? 0, process.getgid?.() ?? 0];

describe('export-rootfs formats', () => {
  it('ext4: e2fsck passes, debugfs sees the files with owners and modes', async () => {
    const dir = await tempDir();
    const tree = await makeTree(dir);
    const out = await exportRootfs({ tree, format: 'ext4', outputDir: join(dir, 'out'), log: noLog });
    expect(out.path).toBe(join(dir, 'out', `rootfs-${out.sha256.slice(0, 16)}.ext4`));
    await execa('e2fsck', ['-fn', out.path], { env: SBIN });
    const cat = await execa('debugfs', ['-R', 'cat /etc/hello', out.path], { env: SBIN });
    expect(cat.stdout).toBe('hello');
    const secret = (await execa('debugfs', ['-R', 'stat /etc/secret', out.path], { env: SBIN })).stdout;
    expect(secret).toMatch(/Mode:\s+0600/);
    expect(secret).toMatch(new RegExp(`User:\\s+${OWNER[0]}\\s+Group:\\s+${OWNER[1]}`));
    expect((await execa('debugfs', ['-R', 'stat /usr/bin/su', out.path], { env: SBIN })).stdout).toMatch(/Mode:\s+04755/);
    expect((await execa('debugfs', ['-R', 'stat /usr/hello', out.path], { env: SBIN })).stdout).toMatch(/Fast link dest: "\.\.\/etc\/hello"/);
    expect((await readdir(join(dir, 'out'))).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('erofs: fsck.erofs passes, dump.erofs sees owners and modes', async () => {
    const dir = await tempDir();
    const tree = await makeTree(dir);
    const out = await exportRootfs({ tree, format: 'erofs', outputDir: join(dir, 'out'), log: noLog });
    expect(out.path).toMatch(/rootfs-[0-9a-f]{16}\.erofs$/);
    await execa('fsck.erofs', [out.path], { env: SBIN });
    const secret = (await execa('dump.erofs', ['--path=/etc/secret', out.path], { env: SBIN })).stdout;
    expect(secret).toMatch(new RegExp(`Uid: ${OWNER[0]}\\s+Gid: ${OWNER[1]}\\s+Access: 0600/`));
    // dump.erofs and fsck.erofs show only the 0777 bits: the setuid bit is read from the inode itself
    // (compact and extended inodes keep i_mode at byte 4; NIDs count 32-byte slots from the metadata block).
    const su = (await execa('dump.erofs', ['--path=/usr/bin/su', out.path], { env: SBIN })).stdout;
    const nid = Number(/NID: (\d+)/.exec(su)?.[1]);
    const metaBlock = Number(/inode metadata start block:\s+(\d+)/.exec((await execa('dump.erofs', ['-s', out.path], { env: SBIN })).stdout)?.[1]);
    const image = await readFile(out.path);
    expect(image.readUInt16LE(metaBlock * 4096 + nid * 32 + 4)).toBe(0o104755);
    const extracted = join(dir, 'x');
    await execa('fsck.erofs', [`--extract=${extracted}`, out.path], { env: SBIN });
    expect(await readFile(join(extracted, 'etc/hello'), 'utf8')).toBe('hello\n');
  });

  it('cpio (plain and gzipped): cpio -t lists every entry with owners and modes', async () => {
    const dir = await tempDir();
    const tree = await makeTree(dir);
    for (const gzip of [false, true]) {
      const out = await exportRootfs({ tree, format: 'cpio', gzip, outputDir: join(dir, 'out'), log: noLog });
      expect(out.path).toMatch(gzip ? /\.cpio\.gz$/ : /rootfs-[0-9a-f]{16}\.cpio$/);
      const listing = await execa('sh', ['-c', `${gzip ? 'zcat' : 'cat'} "$1" | cpio -tv --numeric-uid-gid --quiet`, 'sh', out.path]);
      const lines = listing.stdout.split('\n');
      const names = lines.map((l) => l.split(/\s+/).slice(8).join(' '));
      expect(names).toEqual(['etc', 'etc/hello', 'etc/secret', 'usr', 'usr/bin', 'usr/bin/su', 'usr/hello -> ../etc/hello']);
      const secret = lines.find((l) => l.endsWith(' etc/secret'))!;
      expect(secret).toMatch(new RegExp(`^-rw------- +1 ${OWNER[0]} +${OWNER[1]} +7 `));
      expect(lines.find((l) => l.endsWith(' usr/bin/su'))).toMatch(/^-rwsr-xr-x/);
    }
  });
});

describe('export-rootfs hook and output', () => {
  it('runs --post-export on a copy, names the output by content and replaces it only whole', async () => {
    const dir = await tempDir();
    const tree = await makeTree(dir);
    const outputDir = join(dir, 'out');
    const out = await exportRootfs({ tree, format: 'cpio', outputDir, postExport: 'rm etc/secret && echo "$ROOTFS" > etc/where', log: noLog });
    const names = (await execa('sh', ['-c', 'cpio -t --quiet < "$1"', 'sh', out.path])).stdout.split('\n');
    expect(names).toContain('etc/where');
    expect(names).not.toContain('etc/secret');
    expect(await readFile(join(tree, 'etc/secret'), 'utf8')).toBe('secret\n');

    const again = await exportRootfs({ tree, format: 'cpio', outputDir, postExport: 'rm etc/secret && echo "$ROOTFS" > etc/where', log: noLog });
    expect(again.path).not.toBe(out.path); // $ROOTFS differs per run, so the content and the name differ

    const before = (await readdir(outputDir)).sort();
    await expect(exportRootfs({ tree, format: 'ext4', outputDir, postExport: 'echo broken >&2; exit 3', log: noLog })).rejects.toMatchObject({
      message: '--post-export: "echo broken >&2; exit 3" exited with 3',
      details: ['broken'],
    });
    expect((await readdir(outputDir)).sort()).toEqual(before);
    expect(await readFile(join(tree, 'etc/hello'), 'utf8')).toBe('hello\n');
  });

  it('the same tree twice gives the same cpio name and content', async () => {
    const dir = await tempDir();
    const tree = await makeTree(dir);
    const a = await exportRootfs({ tree, format: 'cpio', outputDir: join(dir, 'out'), log: noLog });
    const b = await exportRootfs({ tree, format: 'cpio', outputDir: join(dir, 'out'), log: noLog });
    expect(b).toEqual(a);
  });

  it('builder export-rootfs --base oci:PATH writes the image and prints its path; bad sources are usage errors', async () => {
    const dir = await tempDir();
    const layout = join(dir, 'layout');
    await writeOciLayout(layout, [{ arch: 'amd64', layers: [[{ name: 'etc/', type: 'directory' }, { name: 'etc/os-release', body: 'ID=test\n' }]] }]);
    const image = join(dir, 'image.tar');
    await execa('tar', ['-C', layout, '-cf', image, '.']);
    const r = await builder(['export-rootfs', '--base', `oci:${image}`, '--format', 'cpio', '--gzip', '-o', join(dir, 'out'), '--root-cache-dir', join(dir, 'roots'), '--json']);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.exitCode).toBe(0);
    const result = JSON.parse(r.stdout) as { path: string; format: string; bytes: number };
    expect(result.format).toBe('cpio');
    const names = (await execa('sh', ['-c', 'zcat "$1" | cpio -t --quiet', 'sh', result.path])).stdout.split('\n');
    expect(names).toContain('etc/os-release');

    const none = await builder(['export-rootfs', '--format', 'cpio']);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain('give exactly one of a recipe, --root DIGEST or --base REF');
    const gz = await builder(['export-rootfs', '--root', 'abcd', '--gzip']);
    expect(gz.exitCode).toBe(2);
    expect(gz.stderr).toContain('--gzip: only for --format cpio');
    const missing = await builder(['export-rootfs', '--root', 'abcd1234', '--root-cache-dir', join(dir, 'roots')]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain('--root: no cached root abcd1234');
  });

  it("a recipe's environment and then the same root by --root digest prefix", async () => {
    const dir = await tempDir();
    const tree = await makeTree(dir);
    const recipe = join(dir, 'recipe.yaml');
    await writeFile(
      recipe,
      ['package:', '  name: x', '  version: 1.0.0', '  epoch: 0', 'environment:', '  contents:', '    repositories:', `      - dir:${tree}`, 'pipeline:', '  - runs: "true"', ''].join('\n'),
    );
    const roots = join(dir, 'roots');
    const first = await builder(['export-rootfs', recipe, '--format', 'cpio', '-o', join(dir, 'out'), '--root-cache-dir', roots, '--json']);
    expect(first.stderr).not.toMatch(/internal error/);
    expect(first.exitCode).toBe(0);
    const made = JSON.parse(first.stdout) as { path: string };
    const names = (await execa('sh', ['-c', 'cpio -t --quiet < "$1"', 'sh', made.path])).stdout.split('\n');
    expect(names).toEqual(expect.arrayContaining(['etc/hello', 'usr/bin/su', 'etc/passwd']));

    const listing = JSON.parse((await builder(['cache', 'ls', '--json', '--root-cache-dir', roots])).stdout) as { roots: { digest: string; kind: string }[] };
    const root = listing.roots.find((r) => r.kind === 'root')!;
    const again = await builder(['export-rootfs', '--root', root.digest.slice(0, 10), '--format', 'cpio', '-o', join(dir, 'out'), '--root-cache-dir', roots]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout.trim()).toBe(made.path);
  });
});
