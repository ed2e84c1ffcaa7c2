// `builder build -i` through a real pty (util-linux `script`): a failing step opens a shell in its sandbox
// (working directory, environment, files, user of the step), the step's script is saved, and `exit` ends the
// build as failed. Without a terminal, -i says so and the build fails as it would without it.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { BUILDER, builder, hasStackTrace, REPO } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

const RECIPE = `package: {name: shelly, version: "1"}
environment:
  environment:
    MYVAR: from-the-recipe
pipeline:
  - name: prepare
    runs: mkdir -p sub && echo made-by-prepare > sub/file
  - name: breaks
    working-directory: sub
    runs: |
      echo about to fail
      exit 9
`;

/** Single-quoted for the shell `script` runs the command with (test-made paths only). */
const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

async function setup() {
  const dir = await tempDir();
  await mkdir(join(dir, 'src'));
  const file = join(dir, 'src', 'shelly.yaml');
  await writeFile(file, RECIPE);
  return { dir, args: ['build', file, '--runner', 'bubblewrap', '--out-dir', join(dir, 'out'), '--workspace-dir', join(dir, 'ws'), '-i'] };
}

describe('builder build -i', () => {
  it('on a failed step, opens a shell in its sandbox on the terminal; exit ends the build as failed', async () => {
    const { args } = await setup();
    const command = [process.execPath, BUILDER, ...args].map(q).join(' ');
    const typed = [
      'echo "PWD=$(pwd)"',
      'echo "VAR=$MYVAR"',
      'echo "FILE=$(cat file)"',
      'echo "UID=$(id -u)"',
      'tty >/dev/null && echo HAS-TTY',
      'grep -c "exit 9" /home/build/.builder/failed-step.sh',
      'exit 3',
      '',
    ].join('\n');
    const r = await execa('script', ['-qec', command, '/dev/null'], { cwd: REPO, input: typed, env: { CI: 'true', TERM: 'dumb', SOURCE_DATE_EPOCH: '0' }, reject: false, timeout: 300_000 });
    const out = r.stdout.replaceAll('\r', '');
    expect(out).toMatch(/--interactive: shelly: 2\/2 breaks failed; a shell in its sandbox, in \/home\/build\/sub/);
    expect(out).toMatch(/the step's script: \/home\/build\/\.builder\/failed-step\.sh \(on the host: \S+\/workspace\/\.builder\/failed-step\.sh\)/);
    expect(out).toMatch(/^PWD=\/home\/build\/sub$/m);
    expect(out).toMatch(/^VAR=from-the-recipe$/m);
    expect(out).toMatch(/^FILE=made-by-prepare$/m);
    expect(out).toMatch(/^UID=1000$/m);
    expect(out).toMatch(/^HAS-TTY$/m);
    expect(out).toMatch(/^1$/m);
    // After the shell: the build fails with the step's own error, and keeps the workspace.
    expect(out).toMatch(/step "breaks" of shelly .* failed with exit code 9/);
    expect(out).toMatch(/workspace kept at/);
    expect(hasStackTrace(out)).toBe(false);
    expect(r.exitCode, out).toBe(1);
  });

  it('without a terminal, says it needs one and fails as without -i', async () => {
    const { args } = await setup();
    const r = await builder(args);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('--interactive: needs a terminal (stdin and stdout are not one); no shell opened');
    expect(r.stderr).toMatch(/step "breaks" of shelly .* failed with exit code 9/);
  });
});
