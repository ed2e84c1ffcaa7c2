// The import graph of src/, read from the source text: which module imports which, and whether only for
// types (erased at run time). Dynamic `import()` counts as a value import.
import { stronglyConnected } from '../../src/text/components.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

export interface ImportEdge {
  from: string;
  to: string;
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

// A static import or re-export: the clause holds no quotes or semicolons, so the match cannot run past it.
const STATIC = /^[ \t]*(import|export)[ \t]+(type[ \t]+)?(?:([^;'"`]*?)[ \t\n]*from[ \t]*)?['"]([^'"]+)['"]/gm;
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function typeOnlyClause(keywordType: boolean, clause: string | undefined): boolean {
  if (keywordType) return true;
  if (clause === undefined) return false;
  const named = /^\{([^}]*)\}$/.exec(clause.trim());
  if (named?.[1] === undefined) return false;
  const names = named[1].split(',').map((n) => n.trim()).filter((n) => n !== '');
  return names.length > 0 && names.every((n) => n.startsWith('type '));
}

/** Every relative import between modules under `root`, as paths relative to `root`. */
export function importGraph(root: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const file of sourceFiles(root)) {
    const text = readFileSync(file, 'utf8');
    const add = (spec: string, typeOnly: boolean): void => {
      if (!spec.startsWith('.')) return;
      edges.push({ from: relative(root, file), to: relative(root, resolve(dirname(file), spec)), typeOnly });
    };
    for (const m of text.matchAll(STATIC)) add(m[4] as string, typeOnlyClause(m[2] !== undefined, m[3]));
    for (const m of text.matchAll(DYNAMIC)) add(m[1] as string, false);
  }
  return edges;
}

/** The strongly connected components with more than one node (Tarjan). */
export function cycles(edges: readonly { from: string; to: string }[]): string[][] {
  const next = new Map<string, Set<string>>();
  for (const e of edges) {
    if (e.from === e.to) continue;
    if (!next.has(e.from)) next.set(e.from, new Set());
    next.get(e.from)?.add(e.to);
  }
  return stronglyConnected(next.keys(), (v) => next.get(v) ?? []).filter((c) => c.length > 1);
}

/** The top-level folder (or file) of a module path relative to src/. */
export function unitOf(modulePath: string): string {
  return modulePath.split('/')[0] as string;
}
