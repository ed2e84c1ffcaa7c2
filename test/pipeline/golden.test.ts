// Golden build plans: every fixture recipe under test/fixtures/recipes compiles to exactly the plan kept
// beside it (`<name>.plan.json`). Regenerate after a deliberate change with
//   UPDATE_GOLDEN=1 node_modules/.bin/vitest run test/pipeline/golden.test.ts
// and review the diff by eye. A first line `# compile: <flags>` sets --arch / --build-option for a fixture.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileOutput, type CompileFlags } from '../../src/cli/commands/compile.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/recipes', import.meta.url));
const PIPELINES = join(FIXTURES, 'pipelines');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

function flagsFor(text: string): CompileFlags {
  const flags: CompileFlags = { arch: 'x86_64', pipelineDir: [PIPELINES], buildOption: [] };
  const header = /^# compile: (.*)$/m.exec(text.split('\n')[0] ?? '');
  const words = header?.[1]?.trim().split(/\s+/) ?? [];
  for (let i = 0; i < words.length; i += 2) {
    if (words[i] === '--arch') flags.arch = words[i + 1]!;
    else if (words[i] === '--build-option') flags.buildOption.push(words[i + 1]!);
    else throw new Error(`unknown flag in compile header: ${words[i]}`);
  }
  return flags;
}

const recipes = readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml')).sort();

describe('golden plans', () => {
  it('has fixtures', () => {
    expect(recipes.length).toBeGreaterThanOrEqual(6);
  });

  for (const name of recipes) {
    it(`${name} compiles to ${name.replace(/\.yaml$/, '.plan.json')}`, async () => {
      const file = join(FIXTURES, name);
      const output = (await compileOutput(file, flagsFor(readFileSync(file, 'utf8')))).split(FIXTURES).join('<fixtures>');
      const golden = join(FIXTURES, name.replace(/\.yaml$/, '.plan.json'));
      if (UPDATE) writeFileSync(golden, output);
      expect(output).toBe(readFileSync(golden, 'utf8'));
    });
  }
});
