// The import boundaries of docs/architecture.md, checked over the real import graph of src/: no cycle between
// modules (type imports included) or between folders (value imports), and no import climbing the import order
// the document writes down. Type-only imports of the seam modules it lists are allowed from anywhere.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cycles, importGraph, unitOf } from './import-graph.ts';

const REPO = resolve(import.meta.dirname, '../..');
const SRC = join(REPO, 'src');
const DOC = readFileSync(join(REPO, 'docs/architecture.md'), 'utf8');

/** The words of the first code line after `marker` in the document. */
function documented(marker: string): string[] {
  const at = DOC.indexOf(marker);
  if (at < 0) throw new Error(`docs/architecture.md has no ${marker}`);
  const block = /```\n([^`]*)```/.exec(DOC.slice(at));
  return (block?.[1] ?? '').split(/\s+/).filter((w) => w !== '' && w !== '<');
}

const ORDER = documented('<!-- import-order -->');
const SEAMS = documented('<!-- seam-modules -->');
const graph = importGraph(SRC);

describe('import boundaries (docs/architecture.md)', () => {
  it('reads the graph (a parse that finds nothing would pass everything)', () => {
    expect(graph.length).toBeGreaterThan(200);
    expect(graph.some((e) => e.typeOnly)).toBe(true);
    expect(graph.some((e) => e.from === 'cli/main.ts' && !e.typeOnly)).toBe(true);
    for (const e of graph) expect(existsSync(join(SRC, e.to)), `${e.from} imports missing ${e.to}`).toBe(true);
  });

  it('places every folder of src/ in the import order, and the seams exist', () => {
    const units = readdirSync(SRC).filter((n) => n.endsWith('.ts') || !n.includes('.'));
    expect(units.filter((u) => !ORDER.includes(u))).toEqual([]);
    for (const seam of SEAMS) expect(existsSync(join(SRC, seam)), seam).toBe(true);
  });

  it('has no module cycle, type imports included', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('has no folder cycle through value imports', () => {
    const folders = graph.filter((e) => !e.typeOnly).map((e) => ({ from: unitOf(e.from), to: unitOf(e.to) }));
    expect(cycles(folders)).toEqual([]);
  });

  it('never imports up the order (type imports of a seam module excepted)', () => {
    const climbing = graph
      .filter((e) => unitOf(e.from) !== unitOf(e.to))
      .filter((e) => !(e.typeOnly && SEAMS.includes(e.to)))
      .filter((e) => ORDER.indexOf(unitOf(e.to)) > ORDER.indexOf(unitOf(e.from)))
      .map((e) => `${e.from} -> ${e.to}${e.typeOnly ? ' (type)' : ''}`);
    expect(climbing).toEqual([]);
  });
});

describe('the checker itself', () => {
  it('finds a cycle and tells type imports from value imports', () => {
    expect(cycles([{ from: 'a', to: 'b' }, { from: 'b', to: 'c' }, { from: 'c', to: 'a' }, { from: 'c', to: 'd' }])).toEqual([['a', 'b', 'c']]);
    const build = graph.find((e) => e.from === 'build/steps.ts' && e.to === 'seams.ts');
    expect(build?.typeOnly).toBe(true);
  });
});
