// Debian's busybox-static as a package tree: `bin/busybox` with every applet linked beside it. Downloaded from
// Debian's archive (the only network tests may reach), unpacked with dpkg-deb -x.
import { copyFile, mkdir, readdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

/** Makes `<work>/busybox` (the tree) from a download into `<work>/debs`; returns the tree. */
export async function busyboxTree(work: string): Promise<string> {
  const debs = join(work, 'debs');
  await mkdir(debs, { recursive: true });
  await execa('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', 'busybox-static'], { cwd: debs, stdin: 'ignore' });
  const deb = (await readdir(debs)).find((f) => f.endsWith('.deb'))!;
  const unpacked = join(work, 'busybox-deb');
  await execa('dpkg-deb', ['-x', join(debs, deb), unpacked]);
  const tree = join(work, 'busybox');
  await mkdir(join(tree, 'bin'), { recursive: true });
  await copyFile(join(unpacked, 'bin/busybox'), join(tree, 'bin/busybox'));
  await execa('chmod', ['0755', join(tree, 'bin/busybox')]);
  const applets = (await execa(join(tree, 'bin/busybox'), ['--list'])).stdout.split('\n').filter((a) => a !== '' && a !== 'busybox');
  for (const a of applets) await symlink('busybox', join(tree, 'bin', a));
  return tree;
}
