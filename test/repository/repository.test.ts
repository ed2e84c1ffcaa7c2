// Repository builds end to end through the real CLI, real bwrap and real APK roots (busybox plus what each
// recipe needs, installed from the out dir): dependency order with --jobs 2, a failure skipping exactly its
// dependents, up-to-date skips, graph errors before anything runs, and the scale-out plans validated against
// the Argo Workflows and GitHub Actions schemas with the same edges the scheduler ran.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { BUILDER, REPO, builder, hasStackTrace } from '../helpers/cli.ts';
import type { RepositorySummary } from '../../src/repository/schedule.ts';
import { type BusyboxRepository, busyboxRepository, type RecipeSpec, recipeText, writeRecipes } from './fixture.ts';

const addFormats = addFormatsModule as unknown as (ajv: Ajv | Ajv2020) => void;
const SCHEMAS = join(import.meta.dirname, '../../../shared/schemas');

let work: string;
let repo: BusyboxRepository;
let key: string;
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'builder-repository-'));
  repo = await busyboxRepository(work);
  key = join(work, 'out.rsa');
  expect((await builder(['keygen', '--bits', '2048', key])).exitCode).toBe(0);
}, 300_000);

// A diamond (d-base → d-left, d-right → d-top), a chain (c1 → c2 → c3), an independent recipe, and a
// failing recipe in the middle of a second chain (c1 → x-bad → x-after). d-top also needs d-base in its
// test environment only: an edge all the same.
const RECIPES: RecipeSpec[] = [
  { name: 'd-base' },
  { name: 'd-left', needs: ['d-base'] },
  { name: 'd-right', needs: ['d-base'] },
  { name: 'd-top', needs: ['d-left', 'd-right'], testNeeds: ['d-base'] },
  { name: 'c1' },
  { name: 'c2', needs: ['c1'] },
  { name: 'c3', needs: ['c2'] },
  { name: 'solo' },
  { name: 'x-bad', needs: ['c1'], fail: true },
  { name: 'x-after', needs: ['x-bad'] },
];

function buildArgs(dir: string, out: string, extra: string[] = []): string[] {
  return ['build', dir, '--runner', 'bubblewrap', '--out-dir', out, '--signing-key', key, '--root-cache-dir', join(work, 'roots'), '--cache-dir', join(work, 'cache'), '--json', ...extra];
}

const byName = (s: RepositorySummary) => new Map(s.recipes.map((r) => [r.recipe, r]));

describe('builder build DIR', () => {
  let dir: string;
  let out: string;
  let first: RepositorySummary;
  let firstErr: string;

  beforeAll(async () => {
    dir = join(work, 'recipes');
    out = join(work, 'out');
    await writeRecipes(dir, RECIPES, repo);
    await writeFile(join(dir, 'notes.yaml'), 'maintainers: [someone]\n');
    const r = await builder([...buildArgs(dir, out), '--jobs', '2'], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
    firstErr = r.stderr;
    expect(r.exitCode, r.all).toBe(1);
    first = JSON.parse(r.stdout) as RepositorySummary;
  }, 600_000);

  it('skips a non-recipe YAML file with a note', () => {
    expect(firstErr).toMatch(/skipping .*notes\.yaml: not a recipe/);
  });

  it('builds in dependency order, two at once', () => {
    const got = byName(first);
    expect(first.jobs).toBe(2);
    for (const r of first.recipes) {
      for (const d of r.dependsOn) {
        const dep = got.get(d)!;
        if (r.status !== 'built') continue;
        expect(dep.status, `${d} before ${r.recipe}`).toBe('built');
        expect(Date.parse(dep.finished!), `${d} finished before ${r.recipe} started`).toBeLessThanOrEqual(Date.parse(r.started!));
      }
    }
    expect(got.get('d-top')!.dependsOn).toEqual(['d-base', 'd-left', 'd-right']);
    expect(got.get('c3')!.dependsOn).toEqual(['c2']);
    // Three recipes are ready at the start: with --jobs 2 two of them overlap, never three.
    const ran = first.recipes.filter((r) => r.started).map((r) => [Date.parse(r.started!), Date.parse(r.finished!)] as const);
    const overlapping = (t: number) => ran.filter(([s, f]) => s <= t && t < f).length;
    expect(Math.max(...ran.map(([s]) => overlapping(s)))).toBe(2);
  });

  it("installs a dependency into the dependent's root from the out dir", () => {
    expect(firstErr).toMatch(new RegExp(`^d-top \\| .*environment: from ${join(out, 'x86_64')}: d-left-1\\.0\\.0-r0 d-right-1\\.0\\.0-r0$`, 'm'));
    expect(firstErr).toMatch(/^d-top \| .*│ marker of d-left$/m);
    expect(firstErr).toMatch(/^c3 \| .*│ marker of c2$/m);
  });

  it('a failure skips exactly its dependents; the rest is built', () => {
    const got = byName(first);
    expect(got.get('x-bad')!.status).toBe('failed');
    expect(got.get('x-bad')!.error).toMatch(/exit code 3/);
    expect(got.get('x-after')).toMatchObject({ status: 'skipped', because: ['x-bad'] });
    const built = first.recipes.filter((r) => r.status === 'built').map((r) => r.recipe).sort();
    expect(built).toEqual(['c1', 'c2', 'c3', 'd-base', 'd-left', 'd-right', 'd-top', 'solo']);
    expect(firstErr).toMatch(/^x-after +skipped because of x-bad$/m);
    expect(firstErr).toMatch(/1 of 10 recipes failed/);
    expect(hasStackTrace(firstErr)).toBe(false);
  });

  it('a second run builds only what is not up to date; a third skips everything', async () => {
    await writeFile(join(dir, 'x-bad.yaml'), recipeText({ name: 'x-bad', needs: ['c1'] }, repo));
    const second = await builder([...buildArgs(dir, out), '--jobs', '2']);
    expect(second.exitCode, second.all).toBe(0);
    const s = byName(JSON.parse(second.stdout) as RepositorySummary);
    expect([...s].filter(([, r]) => r.status === 'built').map(([n]) => n).sort()).toEqual(['x-after', 'x-bad']);
    expect([...s].filter(([, r]) => r.status === 'up-to-date')).toHaveLength(8);

    const third = await builder([...buildArgs(dir, out), '--jobs', '2']);
    expect(third.exitCode, third.all).toBe(0);
    expect((JSON.parse(third.stdout) as RepositorySummary).recipes.every((r) => r.status === 'up-to-date')).toBe(true);
    expect(third.stderr).toMatch(/0 built, 10 up to date, 0 failed/);
  }, 600_000);

  it('a rebuilt dependency rebuilds its dependents only with --rebuild-dependents', async () => {
    const bump = async (epoch: number) => writeFile(join(dir, 'c1.yaml'), recipeText({ name: 'c1' }, repo).replace('epoch: 0', `epoch: ${epoch}`));
    const built = (stdout: string) => (JSON.parse(stdout) as RepositorySummary).recipes.filter((r) => r.status === 'built').map((r) => r.recipe).sort();
    await bump(1);
    const plain = await builder([...buildArgs(dir, out), '--jobs', '2']);
    expect(plain.exitCode, plain.all).toBe(0);
    expect(built(plain.stdout)).toEqual(['c1']);
    await bump(2);
    const cascade = await builder([...buildArgs(dir, out), '--jobs', '2', '--rebuild-dependents']);
    expect(cascade.exitCode, cascade.all).toBe(0);
    expect(built(cascade.stdout)).toEqual(['c1', 'c2', 'c3', 'x-after', 'x-bad']);
  }, 600_000);

  it('argo and github-matrix plans validate against their schemas and have the scheduler\'s edges', async () => {
    const argo = await builder(['plan', dir, '--format', 'argo', '--image', 'registry.example/builder:1']);
    expect(argo.exitCode, argo.all).toBe(0);
    const workflow = parse(argo.stdout) as { spec: { templates: { name: string; dag?: { tasks: { name: string; dependencies?: string[]; depends?: string }[] } }[] } };
    const ajv2020 = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv2020);
    // Kubernetes' integer formats: the type is checked, the width is not.
    for (const f of ['int32', 'int64']) ajv2020.addFormat(f, true);
    ajv2020.addSchema(JSON.parse(await readFile(join(SCHEMAS, 'argo-workflows.schema.json'), 'utf8')) as object, 'argo');
    const validWorkflow = ajv2020.compile({ $ref: 'argo#/definitions/io.argoproj.workflow.v1alpha1.Workflow' });
    expect(validWorkflow(workflow), JSON.stringify(validWorkflow.errors?.slice(0, 5))).toBe(true);
    // The validator does reject a malformed DAG (dependencies must be a list).
    const broken = structuredClone(workflow);
    broken.spec.templates.find((t) => t.dag)!.dag!.tasks[1]!.dependencies = 'r-c1' as unknown as string[];
    expect(validWorkflow(broken)).toBe(false);

    // The same graph with packages passed as artifacts (recipes from git) validates too, with the same edges.
    const viaArtifacts = await builder(['plan', dir, '--format', 'argo', '--image', 'registry.example/builder:1', '--storage', 'artifacts', '--recipes-git', 'https://git.example/recipes.git', '--artifact-repository-ref', 'artifact-repositories:default']);
    expect(viaArtifacts.exitCode, viaArtifacts.all).toBe(0);
    const artifactWorkflow = parse(viaArtifacts.stdout) as typeof workflow;
    expect(validWorkflow(artifactWorkflow), JSON.stringify(validWorkflow.errors?.slice(0, 5))).toBe(true);
    expect(artifactWorkflow.spec.templates.find((t) => t.dag)!.dag!.tasks.map((t) => [t.name, t.dependencies])).toEqual(
      workflow.spec.templates.find((t) => t.dag)!.dag!.tasks.map((t) => [t.name, t.dependencies]),
    );
    expect(viaArtifacts.stdout).toMatch(/from: "\{\{tasks\.r-c1\.outputs\.artifacts\.packages\}\}"/);

    const tasks = workflow.spec.templates.find((t) => t.dag)!.dag!.tasks;
    const argoEdges = tasks.filter((t) => t.name !== 'merge-index').map((t) => [t.name.replace(/^r-/, ''), [...(t.dependencies ?? [])].map((d) => d.replace(/^r-/, '')).sort()]);
    const schedulerEdges = first.recipes.map((r) => [r.recipe, r.dependsOn]);
    expect(Object.fromEntries(argoEdges)).toEqual(Object.fromEntries(schedulerEdges));
    expect(tasks.find((t) => t.name === 'merge-index')!.depends).toMatch(/r-x-after\.Omitted/);

    const gh = await builder(['plan', dir, '--format', 'github-matrix', '--image', 'registry.example/builder:1']);
    expect(gh.exitCode, gh.all).toBe(0);
    const ghWorkflow = parse(gh.stdout) as { jobs: Record<string, { strategy?: { matrix: { include: { recipe: string }[] } } }> };
    const ajv7 = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv7);
    const validGh = ajv7.compile(JSON.parse(await readFile(join(SCHEMAS, 'github-workflow.schema.json'), 'utf8')) as object);
    expect(validGh(ghWorkflow), JSON.stringify(validGh.errors?.slice(0, 5))).toBe(true);
    expect(validGh({ ...ghWorkflow, jobs: { 'wave-0': { 'runs-on': 'ubuntu-latest', strategy: { matrix: 3 }, steps: [] } } })).toBe(false);
    // Each wave holds only recipes whose dependencies are all in earlier waves.
    const waveOf = new Map<string, number>();
    Object.entries(ghWorkflow.jobs).forEach(([job, j]) => {
      for (const m of j.strategy?.matrix.include ?? []) waveOf.set(m.recipe.replace(/^r-/, ''), Number(job.replace('wave-', '')));
    });
    expect(waveOf.size).toBe(10);
    for (const r of first.recipes) for (const d of r.dependsOn) expect(waveOf.get(d)!).toBeLessThan(waveOf.get(r.recipe)!);
    expect(waveOf.get('d-top')).toBe(2);

    const json = await builder(['plan', dir]);
    const plan = JSON.parse(json.stdout) as { recipes: { recipe: string; dependsOn: string[] }[] };
    expect(Object.fromEntries(plan.recipes.map((r) => [r.recipe, r.dependsOn]))).toEqual(Object.fromEntries(schedulerEdges));
  }, 120_000);
});

describe('graph errors, before anything runs', () => {
  async function dirOf(name: string, specs: RecipeSpec[]): Promise<string> {
    const d = join(work, name);
    await writeRecipes(d, specs, repo);
    return d;
  }

  it('a cycle is reported with its path', async () => {
    const d = await dirOf('cycle', [{ name: 'p', needs: ['q'] }, { name: 'q', needs: ['r'] }, { name: 'r', needs: ['p'] }, { name: 'fine' }]);
    const r = await builder(buildArgs(d, join(work, 'cycle-out')));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/dependency cycle: p \(.*p\.yaml\) → needs q → q \(.*q\.yaml\) → needs r → r \(.*r\.yaml\) → needs p → p \(.*p\.yaml\)/);
    expect(r.stderr).not.toMatch(/Prepare build root/);
    expect(hasStackTrace(r.all)).toBe(false);
  });

  it('the same package from two recipes names both', async () => {
    const d = await dirOf('dup', [{ name: 'one' }]);
    await writeFile(join(d, 'one-again.yaml'), recipeText({ name: 'one' }, repo));
    const r = await builder(['plan', d]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/package "one" is built by both .*one-again\.yaml and .*one\.yaml|package "one" is built by both .*one\.yaml and .*one-again\.yaml/);
  });

  it('needs nobody provides and no repository has: one error naming each', async () => {
    const d = await dirOf('missing', [{ name: 'm1', needs: ['nowhere'] }, { name: 'm2', needs: ['elsewhere'] }]);
    const r = await builder(buildArgs(d, join(work, 'missing-out')));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/2 unresolvable dependencies \(nothing was built\)/);
    expect(r.stderr).toMatch(/m1\.yaml: needs "nowhere", which no recipe provides and no repository has/);
    expect(r.stderr).toMatch(/m2\.yaml: needs "elsewhere", which no recipe provides and no repository has/);
    expect(r.stderr).not.toMatch(/Prepare build root/);
  });

  it('--jobs must be a positive integer or auto', async () => {
    const d = await dirOf('jobs', [{ name: 'j1' }]);
    const r = await builder([...buildArgs(d, join(work, 'jobs-out')), '--jobs', '0']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--jobs: "0" is not a positive integer or "auto"/);
  });
});

describe('Ctrl-C during a repository build', () => {
  it('stops every running build, cleans up their sandboxes and workspaces, exits 130', async () => {
    const d = join(work, 'interrupt');
    await writeRecipes(d, [{ name: 'slow1', work: 'sleep 120' }, { name: 'slow2', work: 'sleep 120' }, { name: 'after', needs: ['slow1'] }], repo);
    const workspaces = join(work, 'interrupt-ws');
    await mkdir(workspaces, { recursive: true });
    const child = execa(process.execPath, [BUILDER, ...buildArgs(d, join(work, 'interrupt-out')), '--jobs', '2', '--workspace-dir', workspaces], {
      cwd: REPO,
      env: { CI: 'true' },
      reject: false,
      all: true,
    });
    let seen = '';
    await new Promise<void>((resolveSeen) => {
      child.all!.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        if (/slow1 \| .*▶ 1\/1/.test(seen) && /slow2 \| .*▶ 1\/1/.test(seen)) resolveSeen();
      });
    });
    child.kill('SIGINT');
    const r = await child;
    expect(r.exitCode, r.all).toBe(130);
    expect(r.all).not.toMatch(/after \| /);
    expect(await readdir(workspaces)).toEqual([]);
    // No process is left running in those workspaces (sleep, bwrap).
    const alive: string[] = [];
    for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
      const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmd.includes(workspaces)) alive.push(cmd.replaceAll('\0', ' '));
    }
    expect(alive).toEqual([]);
  }, 300_000);
});
