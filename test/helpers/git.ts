import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';

/** Real git, with a fixed identity and no system config. */
export const git = (cwd: string, ...args: string[]) =>
  execa('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd, env: { GIT_CONFIG_NOSYSTEM: '1' } });

/** `<dir>/upstream`: a git repository on branch main with one commit of `files` (paths may have folders). */
export async function gitRepoWith(dir: string, files: Record<string, string>): Promise<{ repo: string; commit: string }> {
  const repo = join(dir, 'upstream');
  await mkdir(repo, { recursive: true });
  await git(repo, 'init', '-q', '-b', 'main');
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(repo, name)), { recursive: true });
    await writeFile(join(repo, name), text);
  }
  await git(repo, 'add', '.');
  await git(repo, 'commit', '-q', '-m', 'one');
  return { repo, commit: (await git(repo, 'rev-parse', 'HEAD')).stdout.trim() };
}
