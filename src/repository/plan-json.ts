// `builder plan --format json`: the graph as plain data, the same nodes and edges the local scheduler runs.
import { type RecipeGraph, waves } from './graph.ts';

export interface RepositoryPlanJson {
  arch: string;
  recipes: { recipe: string; file: string; packages: string[]; provides: string[]; needs: string[]; dependsOn: string[] }[];
  /** Needs no recipe provides (from repositories or the base): name → recipes needing it. */
  external: Record<string, string[]>;
  waves: string[][];
}

export function repositoryPlanJson(graph: RecipeGraph, arch: string): RepositoryPlanJson {
  return {
    arch,
    recipes: graph.nodes.map((n) => ({ recipe: n.id, file: n.file, packages: n.packages, provides: n.provides, needs: n.needs, dependsOn: n.dependsOn })),
    external: Object.fromEntries([...graph.external].sort(([a], [b]) => a.localeCompare(b))),
    waves: waves(graph),
  };
}
