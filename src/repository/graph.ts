// The dependency graph of a set of recipes: each recipe provides its package and subpackage names and their
// declared `provides`; it needs what its build and test environments install (the compiled plan already holds
// the `needs` of the pipelines it uses). A need provided by another recipe is an edge; everything else must
// come from a repository. Built once, before anything runs, so every problem is reported together.
import { BuilderError } from '../errors.ts';
import { parseDependency } from '../environment/apk/resolve.ts';
import type { BuildPlan } from '../pipeline/plan.ts';

/** One recipe in the graph. `id` is the main package's name (unique, since package names are). */
export interface RecipeNode {
  id: string;
  file: string;
  plan: BuildPlan;
  /** `name-version-rEPOCH` of every package the recipe builds. */
  packages: string[];
  /** Names other recipes may need: package names and declared provides (without versions). */
  provides: string[];
  /** Names the recipe's roots install that it does not provide itself, sorted. */
  needs: string[];
  /** Recipes that provide some of `needs`: need name → recipe id. */
  providers: Record<string, string>;
  /** The recipe ids of `providers`, sorted and unique: the graph's edges into this node. */
  dependsOn: string[];
}

export interface RecipeGraph {
  /** In a topological order: every recipe after the recipes it depends on (ties by id). */
  nodes: RecipeNode[];
  /** Needs no recipe provides: name → ids of the recipes that need it (checked against repositories later). */
  external: Map<string, string[]>;
}

export class RepositoryGraphError extends BuilderError {
  override name = 'RepositoryGraphError';
}

export interface CompiledRecipe {
  file: string;
  plan: BuildPlan;
}

/** The bare name of a dependency (`libfoo>=1.2` → `libfoo`); conflicts (`!name`) need nothing. */
function neededName(text: string): string | undefined {
  const dep = parseDependency(text);
  return dep.conflict ? undefined : dep.name;
}

export function buildGraph(recipes: CompiledRecipe[]): RecipeGraph {
  const providerOf = new Map<string, string>();
  const problems: string[] = [];
  const nodes = new Map<string, RecipeNode>();
  for (const { file, plan } of recipes) {
    const id = plan.packages[0]!.name;
    const earlier = nodes.get(id);
    if (earlier) {
      problems.push(`package "${id}" is built by both ${earlier.file} and ${file}`);
      continue;
    }
    const provides = new Set<string>();
    for (const pkg of plan.packages) {
      provides.add(pkg.name);
      for (const p of pkg.dependencies.provides) provides.add(parseDependency(p).name);
    }
    for (const name of provides) {
      const other = providerOf.get(name);
      if (other !== undefined && other !== id) problems.push(`package "${name}" is provided by both ${nodes.get(other)!.file} and ${file}`);
      else providerOf.set(name, id);
    }
    const wanted = [...plan.environment.packages, ...plan.packages.flatMap((p) => p.test?.environment.packages ?? [])];
    const needs = [...new Set(wanted.map(neededName).filter((n): n is string => n !== undefined && !provides.has(n)))].sort();
    nodes.set(id, {
      id,
      file,
      plan,
      packages: plan.packages.map((p) => `${p.name}-${p.version}-r${p.epoch}`),
      provides: [...provides].sort(),
      needs,
      providers: {},
      dependsOn: [],
    });
  }
  if (problems.length > 0) throw new RepositoryGraphError(`${problems.length} package(s) are built by more than one recipe`, { details: problems });

  const external = new Map<string, string[]>();
  for (const node of nodes.values()) {
    for (const need of node.needs) {
      const provider = providerOf.get(need);
      if (provider === undefined) external.set(need, [...(external.get(need) ?? []), node.id]);
      else node.providers[need] = provider;
    }
    node.dependsOn = [...new Set(Object.values(node.providers))].sort();
  }
  return { nodes: topologicalOrder(nodes), external };
}

/** Kahn's order, ties broken by id so the order is stable; a cycle is an error that prints it. */
function topologicalOrder(nodes: Map<string, RecipeNode>): RecipeNode[] {
  const cycle = findCycle(nodes);
  if (cycle) throw new RepositoryGraphError(`dependency cycle: ${cycle}`);
  const remaining = new Map([...nodes.values()].map((n) => [n.id, n.dependsOn.length]));
  const dependents = new Map<string, string[]>();
  for (const n of nodes.values()) for (const d of n.dependsOn) dependents.set(d, [...(dependents.get(d) ?? []), n.id]);
  const ready = [...remaining].filter(([, c]) => c === 0).map(([id]) => id).sort();
  const order: RecipeNode[] = [];
  while (ready.length > 0) {
    const id = ready.shift()!;
    order.push(nodes.get(id)!);
    for (const dep of dependents.get(id) ?? []) {
      const left = remaining.get(dep)! - 1;
      remaining.set(dep, left);
      if (left === 0) {
        ready.push(dep);
        ready.sort();
      }
    }
  }
  return order;
}

/** `a (a.yaml) → needs libb → b (b.yaml) → needs a → a (a.yaml)`, or undefined. */
function findCycle(nodes: Map<string, RecipeNode>): string | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    state.set(id, 'open');
    stack.push(id);
    const node = nodes.get(id)!;
    for (const dep of node.dependsOn) {
      if (state.get(dep) === 'open') return [...stack.slice(stack.indexOf(dep)), dep];
      if (state.get(dep) === undefined) {
        const found = visit(dep);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of [...nodes.keys()].sort()) {
    if (state.get(id) !== undefined) continue;
    const path = visit(id);
    if (!path) continue;
    // The path runs dependent → dependency; each arrow names the package that makes the edge.
    return path
      .map((rid, i) => {
        const node = nodes.get(rid)!;
        const next = path[i + 1];
        const label = `${rid} (${node.file})`;
        if (next === undefined) return label;
        const via = Object.entries(node.providers).find(([, p]) => p === next)![0];
        return `${label} → needs ${via} →`;
      })
      .join(' ');
  }
  return undefined;
}

/** Longest-path layers: wave k holds the recipes whose dependencies are all in earlier waves. */
export function waves(graph: RecipeGraph): string[][] {
  const level = new Map<string, number>();
  for (const n of graph.nodes) level.set(n.id, Math.max(-1, ...n.dependsOn.map((d) => level.get(d)!)) + 1);
  const out: string[][] = [];
  for (const n of graph.nodes) (out[level.get(n.id)!] ??= []).push(n.id);
  return out.map((w) => w.sort());
}

/** Recipes `id` depends on, directly or not, in the graph's order. */
export function dependenciesOf(graph: RecipeGraph, id: string): string[] {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const out = new Set<string>();
  const visit = (n: string): void => {
    for (const d of byId.get(n)!.dependsOn) {
      if (!out.has(d)) {
        out.add(d);
        visit(d);
      }
    }
  };
  visit(id);
  return graph.nodes.map((n) => n.id).filter((n) => out.has(n));
}
