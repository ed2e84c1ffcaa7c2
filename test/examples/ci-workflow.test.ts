// examples/ci/github-actions.yml: valid against GitHub's workflow schema (SchemaStore's, in ../shared/schemas),
// does what the issue asks (README setup, cached roots and sources, build, test, upload), and every builder
// flag it passes exists in that command's --help. Plus the ::group:: lines of the plain renderer in Actions.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { PlainRenderer } from '../../src/build/progress.ts';
import { builder } from '../helpers/cli.ts';

const WORKFLOW = fileURLToPath(new URL('../../examples/ci/github-actions.yml', import.meta.url));
const SCHEMA = fileURLToPath(new URL('../../../shared/schemas/github-workflow.schema.json', import.meta.url));

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, string>;
}

async function workflow(): Promise<{ doc: unknown; steps: Step[] }> {
  const doc = parse(await readFile(WORKFLOW, 'utf8')) as { jobs: Record<string, { steps: Step[] }> };
  return { doc, steps: Object.values(doc.jobs).flatMap((j) => j.steps) };
}

describe('the GitHub Actions example', () => {
  it('is valid against the workflow schema, and the schema catches a broken one', async () => {
    const schema = JSON.parse(await readFile(SCHEMA, 'utf8')) as object;
    const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
    const { doc } = await workflow();
    expect(validate(doc), JSON.stringify(validate.errors, null, 2)).toBe(true);
    const broken = structuredClone(doc) as { jobs: Record<string, Record<string, unknown>> };
    delete broken.jobs.build!['runs-on'];
    expect(validate(broken)).toBe(false);
  });

  it('sets builder up as the README says, caches roots and sources, builds, tests and uploads', async () => {
    const { steps } = await workflow();
    const readme = await readFile(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    expect(readme).toContain('./scripts/setup.sh');
    const runs = steps.map((s) => s.run ?? '').join('\n');
    expect(runs).toMatch(/^\.\/scripts\/setup\.sh$/m);
    const cache = steps.find((s) => s.uses?.startsWith('actions/cache@'));
    expect(cache?.with?.path).toMatch(/\.cache\/builder-roots/);
    expect(cache?.with?.path).toMatch(/\.cache\/builder$/m);
    expect(runs).toMatch(/builder build /);
    expect(runs).toMatch(/builder test /);
    expect(steps.some((s) => s.uses?.startsWith('actions/upload-artifact@') && /packages\//.test(s.with?.path ?? ''))).toBe(true);
  });

  it('passes only flags the builder commands have', async () => {
    const { steps } = await workflow();
    const calls = steps.flatMap((s) => [...(s.run ?? '').replace(/\n\s*/g, ' ').matchAll(/builder\/bin\/builder ([a-z-]+)((?: (?:"[^"]*"|[^\s;&|]+))*)/g)]);
    expect(calls.length).toBeGreaterThanOrEqual(5);
    const helps = new Map<string, string>();
    for (const [, command, args] of calls) {
      if (!helps.has(command!)) helps.set(command!, (await builder([command!, '--help'])).stdout);
      for (const flag of (args ?? '').match(/ --[a-z-]+/g) ?? []) {
        expect(helps.get(command!), `${command}${flag}`).toContain(`${flag.trim()} `);
      }
    }
  }, 60_000);
});

describe('plain progress in GitHub Actions', () => {
  it('folds each top-level stage into a ::group::, closing it before a failure line', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const renderer = new PlainRenderer(out, { groups: true });
    await renderer.run([
      { title: 'Fetch sources', run: async (ctx) => ctx.output('got it') },
      { title: 'Packages', subtasks: [{ title: 'hello', run: async () => undefined }] },
    ]);
    await expect(renderer.run([{ title: 'Build', run: async () => Promise.reject(new Error('boom')) }])).rejects.toThrow('boom');
    const lines = text.trimEnd().split('\n').map((l) => l.replace(/^\[\d\d:\d\d:\d\d\.\d{3}\] /, '[t] '));
    expect(lines).toEqual([
      '::group::Fetch sources',
      '[t] ▶ Fetch sources',
      '[t]   │ got it',
      expect.stringMatching(/^\[t\] ✔ Fetch sources \(\d+\.\d\ds\)$/),
      '::endgroup::',
      '::group::Packages',
      '[t] ▶ Packages',
      '[t]   ▶ hello',
      expect.stringMatching(/^\[t\]   ✔ hello/),
      expect.stringMatching(/^\[t\] ✔ Packages/),
      '::endgroup::',
      '::group::Build',
      '[t] ▶ Build',
      '::endgroup::',
      expect.stringMatching(/^\[t\] ✖ Build/),
    ]);

    const plain = new PassThrough();
    let none = '';
    plain.on('data', (c: Buffer) => (none += c.toString()));
    await new PlainRenderer(plain).run([{ title: 'Fetch sources' }]);
    expect(none).not.toContain('::group::');
  });
});
