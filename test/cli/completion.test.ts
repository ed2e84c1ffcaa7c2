// `builder completion` through the real CLI; each script is loaded into the real shell and asked to complete.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { builder } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const has = async (shell: string) => (await execa('sh', ['-c', `command -v ${shell}`], { reject: false })).exitCode === 0;
// zsh and fish come from scripts/setup.sh --test-tools; bash is always there.
const HAS_FISH = await has('fish');
const HAS_ZSH = await has('zsh');

async function script(shell: string): Promise<string> {
  const r = await builder(['completion', shell]);
  expect(r.exitCode, r.all).toBe(0);
  const file = join(await tempDir(), `builder.${shell}`);
  await writeFile(file, r.stdout);
  return file;
}

describe('builder completion', () => {
  it('bash: completes commands, subcommands, flags and flag choices', async () => {
    const file = await script('bash');
    const complete = async (...words: string[]) => {
      const r = await execa('bash', ['-c', `source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _builder_completion; printf '%s\\n' "\${COMPREPLY[@]}"`, file, 'builder', ...words], { cwd: '/' });
      return r.stdout.split('\n').filter(Boolean);
    };
    expect(await complete('reb')).toEqual(['rebuild']);
    expect(await complete('source', 'g')).toEqual(['get']);
    expect(await complete('bump', '--exp')).toEqual(['--expected-commit']);
    expect(await complete('build', '--runner', '')).toEqual(['bubblewrap', 'qemu', 'auto']);
    expect(await complete('sign-index', '--f')).toEqual(['--force']);
  });

  it.skipIf(!HAS_FISH)('fish: completes commands, subcommands and flags', async () => {
    const file = await script('fish');
    const complete = async (line: string) =>
      (await execa('fish', ['-c', `source ${file}; complete -C '${line}'`])).stdout.split('\n').map((l) => l.split('\t')[0]);
    expect(await complete('builder reb')).toEqual(['rebuild']);
    expect(await complete('builder source g')).toEqual(['get']);
    expect(await complete('builder source ')).toEqual(['get', 'pop']);
    expect(await complete('builder build --runner ')).toEqual(['auto', 'bubblewrap', 'qemu']);
  });

  it.skipIf(!HAS_ZSH)('zsh: offers the commands and flags of the command being completed', async () => {
    const file = await script('zsh');
    // compsys is not running outside an interactive shell, so its helpers print what they are given.
    const offered = async (...words: string[]) =>
      (
        await execa('zsh', ['-f', '-c', `compdef() {}; _describe() { print -l -- \${(P)4}; }; _files() {}; source "$1"; shift; words=(builder "$@"); CURRENT=\${#words}; PREFIX=\${words[-1]}; _builder`, 'zsh', file, ...words])
      ).stdout.split('\n');
    expect(await offered('')).toContain('rebuild:rebuild packages from the build plan they embed and check the result is identical byte for byte');
    expect(await offered('source', '')).toEqual([expect.stringMatching(/^get:/), expect.stringMatching(/^pop:/)]);
    expect(await offered('bump', '-')).toContain('--expected-commit:set the expected-commit of the git-checkout steps that check out the version');
  });

  it('an unknown shell is a usage error', async () => {
    const r = await builder(['completion', 'tcsh']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('unknown shell "tcsh"');
  });
});
