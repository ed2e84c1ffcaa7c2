// `builder build --resume` through the real CLI and real bwrap: a failed build's kept workspace is continued,
// skipping the steps its journal says completed unchanged; what was skipped is asserted from the journal and
// the output, never from the clock.
import { chmod, copyFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Journal, JOURNAL_FILE } from '../../src/build/journal.ts';
import { builder, hasStackTrace } from '../helpers/cli.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };

/** A recipe whose first step appends to a file in the workspace (so a rerun shows), with a subpackage. */
function recipe(o: { mid?: string; last?: string; sub?: string } = {}): string {
  return `package: {name: resumable, version: "1.0"}
pipeline:
  - name: slow
    runs: |
      echo ran >> slow-runs
      echo built > "\${{targets.destdir}}/data"
  - name: mid
    runs: ${o.mid ?? 'echo mid > "${{targets.destdir}}/mid"'}
  - name: last
    runs: ${o.last ?? 'echo last > "${{targets.destdir}}/last"'}
subpackages:
  - name: resumable-extra
    pipeline:
      - name: extra
        runs: ${o.sub ?? 'echo extra > "${{targets.subpkgdir}}/extra"'}
`;
}

async function setup() {
  const dir = await tempDir();
  const src = join(dir, 'src');
  await mkdir(src);
  const file = join(src, 'resumable.yaml');
  const out = join(dir, 'out');
  const ws = join(dir, 'ws');
  const run = (extra: string[] = [], outDir = out) =>
    builder(['build', file, '--runner', 'bubblewrap', '--out-dir', outDir, '--workspace-dir', ws, ...extra], { env: EPOCH });
  return { dir, file, out, ws, run };
}

async function keptWorkspace(stderr: string): Promise<string> {
  const kept = /workspace kept at (\S+)/.exec(stderr)?.[1];
  expect(kept, stderr).toBeDefined();
  return kept!;
}

async function journal(root: string): Promise<Journal> {
  return JSON.parse(await readFile(join(root, JOURNAL_FILE), 'utf8')) as Journal;
}

async function apks(out: string): Promise<Map<string, Buffer>> {
  const files = (await readdir(join(out, 'x86_64'))).filter((f) => f.endsWith('.apk')).sort();
  return new Map(await Promise.all(files.map(async (f) => [f, await readFile(join(out, 'x86_64', f))] as const)));
}

describe('builder build --resume', () => {
  it('after a failing last step is fixed, skips the completed steps and makes the packages a clean build makes', async () => {
    const t = await setup();
    await writeFile(t.file, recipe({ sub: 'exit 3' }));
    const failed = await t.run();
    expect(failed.exitCode, failed.all).toBe(1);
    const kept = await keptWorkspace(failed.stderr);
    const before = await journal(kept);
    expect(before.steps.map((s) => [s.title, s.outcome])).toEqual([
      ['resumable: 1/3 slow', 'completed'],
      ['resumable: 2/3 mid', 'completed'],
      ['resumable: 3/3 last', 'completed'],
      ['resumable-extra: 1/1 extra', 'failed'],
    ]);

    await writeFile(t.file, recipe());
    const resumed = await t.run(['--resume']);
    expect(resumed.exitCode, resumed.all).toBe(0);
    expect(resumed.stderr).toContain(`resuming in ${kept}: skipping 3 completed step(s): resumable: 1/3 slow, resumable: 2/3 mid, resumable: 3/3 last`);
    expect(resumed.stderr).toContain('rerunning from resumable-extra: 1/1 extra: it failed last time');
    expect(resumed.stderr).toMatch(/1\/3 slow \(skipped: completed in the kept workspace/);
    // A successful resume removes the workspace, as a successful build does.
    expect(await readdir(kept).catch(() => 'removed')).toBe('removed');
    expect(resumed.all).not.toMatch(/▶ 1\/3 slow/);

    const clean = await t.run([], join(t.dir, 'clean'));
    expect(clean.exitCode, clean.all).toBe(0);
    const a = await apks(t.out);
    const b = await apks(join(t.dir, 'clean'));
    expect([...a.keys()]).toEqual(['resumable-1.0-r0.apk', 'resumable-extra-1.0-r0.apk']);
    for (const [name, bytes] of a) expect(bytes.equals(b.get(name)!), name).toBe(true);
  });

  it('reruns a changed early step and every step after it; a failed resume keeps the workspace and its journal', async () => {
    const t = await setup();
    await writeFile(t.file, recipe({ last: 'exit 4' }));
    const kept = await keptWorkspace((await t.run()).stderr);

    await writeFile(t.file, recipe({ mid: 'echo changed > "${{targets.destdir}}/mid"', last: 'exit 5' }));
    const again = await t.run(['--resume']);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain('skipping 1 completed step(s): resumable: 1/3 slow');
    expect(again.stderr).toContain('rerunning from resumable: 2/3 mid: its script changed');
    expect(again.stderr).toMatch(/step "last" of resumable .* exit code 5/);
    expect(await keptWorkspace(again.stderr)).toBe(kept);
    // The first step ran once across both builds.
    expect(await readFile(join(kept, 'workspace', 'slow-runs'), 'utf8')).toBe('ran\n');
    expect((await journal(kept)).steps.map((s) => s.outcome)).toEqual(['completed', 'completed', 'failed']);

    // A change in the first step leaves nothing to skip: a fresh workspace, every step runs.
    await writeFile(t.file, recipe().replace('echo ran >> slow-runs', 'echo ran again >> slow-runs'));
    const fresh = await t.run(['--resume']);
    expect(fresh.exitCode, fresh.all).toBe(0);
    expect(fresh.stderr).toContain(`--resume: nothing to skip in ${kept} (resumable: 1/3 slow: its script changed): building in a fresh workspace`);
  });

  it('refuses to resume when the build root changed, and says why', async () => {
    const t = await setup();
    const root = join(t.dir, 'root');
    await makeDashRoot(root);
    const base = ['--base', `dir:${root}`, '--root-cache-dir', join(t.dir, 'roots')];
    await writeFile(t.file, recipe({ last: 'exit 4' }));
    const failed = await t.run(base);
    expect(failed.exitCode, failed.all).toBe(1);
    const kept = await keptWorkspace(failed.stderr);
    await writeFile(join(root, 'etc', 'marker'), 'changed\n');
    await writeFile(t.file, recipe());
    const refused = await t.run([...base, '--resume']);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`--resume: cannot resume ${kept}: the build root changed since \\(was [0-9a-f]{12}, now [0-9a-f]{12}\\)`));
    expect(hasStackTrace(refused.all)).toBe(false);
    // The kept workspace is untouched: its journal still says what it did.
    expect((await journal(kept)).steps.map((s) => s.outcome)).toEqual(['completed', 'completed', 'failed']);
    const auto = await t.run([...base, '--resume=auto']);
    expect(auto.exitCode, auto.all).toBe(0);
    expect(auto.stderr).toContain(`--resume=auto: not resuming ${kept}: the build root changed since`);
  });

  it('bad input: no kept workspace, another recipe\'s, a corrupt journal; --resume=auto builds from scratch instead', async () => {
    const t = await setup();
    await writeFile(t.file, recipe());
    const none = await t.run(['--resume']);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toMatch(/--resume: no kept workspace of .*resumable.yaml \(out dir .*\) under .*ws; a failed build keeps one/);
    expect(hasStackTrace(none.all)).toBe(false);

    const other = join(t.dir, 'src', 'other.yaml');
    await writeFile(other, recipe({ last: 'exit 1' }).replace('name: resumable,', 'name: resumable,'));
    const otherRun = await builder(['build', other, '--runner', 'bubblewrap', '--out-dir', t.out, '--workspace-dir', t.ws], { env: EPOCH });
    const otherKept = await keptWorkspace(otherRun.stderr);
    const wrong = await t.run([`--resume=${otherKept}`]);
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toContain(`--resume: cannot resume ${otherKept}: it is a workspace of ${other}, not of ${t.file}`);

    await writeFile(join(otherKept, JOURNAL_FILE), '{"format": 1, "steps": [');
    const corrupt = await t.run([`--resume=${otherKept}`]);
    expect(corrupt.exitCode).toBe(1);
    expect(corrupt.stderr).toMatch(/--resume: .*journal.json is corrupt/);
    expect(hasStackTrace(corrupt.all)).toBe(false);

    const auto = await t.run(['--resume=auto']);
    expect(auto.exitCode, auto.all).toBe(0);
    expect(auto.stderr).toMatch(/--resume=auto: .*building from scratch/);
    expect((await apks(t.out)).size).toBe(2);
  });
});

/** The smallest root that runs steps: dash and the C library it links, copied from the host. */
async function makeDashRoot(root: string): Promise<void> {
  for (const d of ['usr/bin', 'usr/lib/x86_64-linux-gnu', 'lib64', 'etc', 'home/build', 'tmp', 'dev', 'proc', 'var/cache/melange']) await mkdir(join(root, d), { recursive: true });
  await copyFile('/bin/dash', join(root, 'usr/bin/dash'));
  await chmod(join(root, 'usr/bin/dash'), 0o755);
  await symlink('dash', join(root, 'usr/bin/sh'));
  await symlink('usr/bin', join(root, 'bin'));
  await symlink('usr/lib', join(root, 'lib'));
  await copyFile('/lib/x86_64-linux-gnu/libc.so.6', join(root, 'usr/lib/x86_64-linux-gnu/libc.so.6'));
  await copyFile('/lib64/ld-linux-x86-64.so.2', join(root, 'lib64/ld-linux-x86-64.so.2'));
  await chmod(join(root, 'lib64/ld-linux-x86-64.so.2'), 0o755);
  await writeFile(join(root, 'etc', 'marker'), 'first\n');
}
