// Dependency resolution over parsed APK indexes: pure, no I/O. Given the requested constraints (the "world"),
// the repositories' packages and the names a base root already provides, picks one version per package name
// the way apk does (highest version by apk's ordering; providers by provider_priority), follows `depend`
// lines including `so:`/`cmd:`/`pc:` virtuals, honours `!name` conflicts, and orders the result so that
// dependencies come before their dependents (cycles are allowed, as in apk).
import { apkVersionSatisfies, compareApkVersions, isValidApkVersion, type ApkVersionOperator } from '../../apk/version.ts';
import { BuilderError } from '../../errors.ts';
import { baseProvision } from '../base-provides.ts';

/** The fields of an index entry the resolver reads. */
export interface Resolvable {
  pkgname: string;
  pkgver: string;
  arch: string;
  depend: string[];
  provides: string[];
  providerPriority?: number;
}

export interface Repository<T extends Resolvable> {
  /** How the repository is named in messages (its URL or directory, with the arch). */
  label: string;
  packages: readonly T[];
}

export interface Dependency {
  name: string;
  op?: ApkVersionOperator;
  version?: string;
  /** `!name`: the name must not be installed. */
  conflict: boolean;
  /** As written. */
  text: string;
}

export interface ResolveRequest<T extends Resolvable> {
  /** Requested constraints, e.g. `busybox`, `libgreet>=1.0`, `so:libc.so.6`. */
  world: readonly string[];
  /** In priority order: on equal versions the earlier repository wins. */
  repositories: readonly Repository<T>[];
  /** Target architecture; index entries for other architectures (except `noarch`) are ignored. */
  arch: string;
  /** Names the base root provides already: name → version (undefined when not an apk version). */
  base?: ReadonlyMap<string, string | undefined>;
  /** Names never taken from the base: they must come from a repository. */
  fromRepositories?: ReadonlySet<string>;
  /** Who asked for each requested name (recipe lines, pipelines), for errors. */
  origins?: Readonly<Record<string, readonly string[]>>;
  /** Named in errors: the build or the test environment. */
  purpose?: 'build' | 'test';
}

export interface ResolvedPackage<T extends Resolvable> {
  pkg: T;
  repository: string;
}

export interface Resolution<T extends Resolvable> {
  /** Packages to install, dependencies first. */
  install: ResolvedPackage<T>[];
  /** Requested or depended-on names that the base provides (nothing to install). */
  fromBase: string[];
}

/** Resolution failed; `problems` lists every unresolvable name or conflict found. */
export class ResolveError extends BuilderError {
  override name = 'ResolveError';
  readonly problems: string[];
  readonly missing: string[];
  constructor(problems: string[], missing: string[], repositories: string[], purpose?: 'build' | 'test') {
    const searched = repositories.length > 0 ? repositories.join(', ') : '(no repositories)';
    const what = purpose === 'test' ? 'the test environment' : 'the build environment';
    const head = missing.length > 0 ? `cannot resolve ${what}: no package provides ${missing.join(', ')}` : `cannot resolve ${what}`;
    super(head, { details: [...problems, `repositories searched: ${searched}`] });
    this.problems = problems;
    this.missing = missing;
  }
}

const OPERATORS: readonly ApkVersionOperator[] = ['<=', '>=', '<~', '>~', '=', '<', '>', '~'];

/** Parses one dependency as apk writes it: `[!]name[@tag][op version]`. Throws on a malformed one. */
export function parseDependency(text: string): Dependency {
  const raw = text.trim();
  const conflict = raw.startsWith('!');
  const body = conflict ? raw.slice(1) : raw;
  const at = body.search(/[<>=~]/);
  let name = at < 0 ? body : body.slice(0, at);
  let op: ApkVersionOperator | undefined;
  let version: string | undefined;
  if (at >= 0) {
    const rest = body.slice(at);
    op = OPERATORS.find((o) => rest.startsWith(o));
    // apk also spells "=~" for fuzzy and "><" for "any": normalise what we can.
    if (rest.startsWith('=~')) op = '~';
    if (op === undefined) throw new BuilderError(`malformed dependency "${text}"`);
    version = rest.slice(rest.startsWith('=~') ? 2 : op.length);
    if (version === '' || !isValidApkVersion(version)) {
      throw new BuilderError(`malformed dependency "${text}": "${version}" is not an apk version`);
    }
  }
  // A repository tag (`name@edge`) selects among tagged repositories; there are none here, so it is dropped.
  const tag = name.indexOf('@');
  if (tag >= 0) name = name.slice(0, tag);
  if (name === '' || /\s/.test(name)) throw new BuilderError(`malformed dependency "${text}"`);
  const dep: Dependency = { name, conflict, text: raw };
  if (op !== undefined) dep.op = op;
  if (version !== undefined) dep.version = version;
  return dep;
}

function versionOk(have: string | undefined, dep: Dependency): boolean {
  if (dep.op === undefined || dep.version === undefined) return true;
  if (have === undefined) return false;
  return apkVersionSatisfies(have, dep.op, dep.version);
}

interface Offer<T extends Resolvable> {
  pkg: T;
  repository: string;
  repositoryIndex: number;
  /** The version this package offers for the name: its own for a real name, the provided one otherwise. */
  version: string | undefined;
  real: boolean;
}

interface Demand {
  dep: Dependency;
  by: string;
  /** Asked for by the request itself (a recipe's need), not by a package's dependency. */
  world?: boolean;
}

function labelOf(pkg: Resolvable): string {
  return `${pkg.pkgname}-${pkg.pkgver}`;
}

/** Which offer apk prefers: real name, then provider_priority, then version, then repository order, then name. */
function better<T extends Resolvable>(a: Offer<T>, b: Offer<T>): number {
  if (a.real !== b.real) return a.real ? -1 : 1;
  const pa = a.pkg.providerPriority ?? 0;
  const pb = b.pkg.providerPriority ?? 0;
  if (pa !== pb) return pb - pa;
  if (a.version !== undefined && b.version !== undefined) {
    const v = compareApkVersions(b.version, a.version);
    if (v !== 0) return v;
  }
  const pv = compareApkVersions(b.pkg.pkgver, a.pkg.pkgver);
  if (pv !== 0) return pv;
  if (a.repositoryIndex !== b.repositoryIndex) return a.repositoryIndex - b.repositoryIndex;
  return a.pkg.pkgname < b.pkg.pkgname ? -1 : a.pkg.pkgname > b.pkg.pkgname ? 1 : 0;
}

function providedNames(pkg: Resolvable): { name: string; version: string | undefined }[] {
  return pkg.provides.map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? { name: p, version: undefined } : { name: p.slice(0, eq), version: p.slice(eq + 1) };
  });
}

type Attempt<T extends Resolvable> =
  | { kind: 'done'; selected: Map<string, Offer<T>>; fromBase: Set<string>; problems: string[]; missing: string[] }
  | { kind: 'learn'; name: string; demand: Demand };

export function resolve<T extends Resolvable>(request: ResolveRequest<T>): Resolution<T> {
  // Every offer for every name, from every repository, for this architecture.
  const offers = new Map<string, Offer<T>[]>();
  const addOffer = (name: string, offer: Offer<T>): void => {
    const list = offers.get(name);
    if (list) list.push(offer);
    else offers.set(name, [offer]);
  };
  request.repositories.forEach((repo, repositoryIndex) => {
    for (const pkg of repo.packages) {
      if (pkg.arch !== request.arch && pkg.arch !== 'noarch' && request.arch !== '') continue;
      addOffer(pkg.pkgname, { pkg, repository: repo.label, repositoryIndex, version: pkg.pkgver, real: true });
      for (const p of providedNames(pkg)) {
        if (p.name !== pkg.pkgname) addOffer(p.name, { pkg, repository: repo.label, repositoryIndex, version: p.version, real: false });
      }
    }
  });
  const world = request.world.map((w) => {
    const dep = parseDependency(w);
    const asked = request.origins?.[dep.name] ?? request.origins?.[w];
    const by = asked && asked.length > 0 ? asked.join('; ') : request.purpose === 'test' ? 'the test environment' : 'the build environment';
    return { dep, by, world: true };
  });
  // Constraints learnt from earlier attempts: a later demand that the greedy choice could not meet.
  const learnt = new Map<string, Demand[]>();
  const learntKeys = new Set<string>();
  for (let round = 0; round < 10_000; round++) {
    const attempt = attemptResolve(request, offers, world, learnt);
    if (attempt.kind === 'learn') {
      const key = `${attempt.name}\0${attempt.demand.dep.text}`;
      if (learntKeys.has(key)) throw new Error(`internal: resolver learnt ${attempt.demand.dep.text} twice`);
      learntKeys.add(key);
      const list = learnt.get(attempt.name) ?? [];
      list.push(attempt.demand);
      learnt.set(attempt.name, list);
      continue;
    }
    if (attempt.problems.length > 0) {
      throw new ResolveError(attempt.problems, attempt.missing, request.repositories.map((r) => r.label), request.purpose);
    }
    return { install: installOrder(attempt.selected), fromBase: [...attempt.fromBase].sort() };
  }
  throw new Error('internal: resolver did not converge');
}

function attemptResolve<T extends Resolvable>(
  request: ResolveRequest<T>,
  offers: Map<string, Offer<T>[]>,
  world: Demand[],
  learnt: Map<string, Demand[]>,
): Attempt<T> {
  const selected = new Map<string, Offer<T>>();
  // name → selected packages offering it (real name or provides), with the version offered.
  const offered = new Map<string, Offer<T>[]>();
  const demands = new Map<string, Demand[]>();
  const conflicts: Demand[] = [];
  const fromBase = new Set<string>();
  const problems: string[] = [];
  const missing: string[] = [];
  const reported = new Set<string>();
  const queue: Demand[] = [...world];

  const acceptable = (offer: Offer<T>, name: string, demand: Demand): boolean => {
    if (!versionOk(offer.version, demand.dep)) return false;
    if (!(learnt.get(name) ?? []).every((d) => versionOk(offer.version, d.dep))) return false;
    // Constraints on the package's own name hold whichever name it was chosen for.
    if (!(learnt.get(offer.pkg.pkgname) ?? []).every((d) => versionOk(offer.pkg.pkgver, d.dep))) return false;
    const chosen = selected.get(offer.pkg.pkgname);
    return chosen === undefined || chosen.pkg === offer.pkg;
  };

  while (queue.length > 0) {
    const demand = queue.shift()!;
    const { dep } = demand;
    const list = demands.get(dep.name) ?? [];
    list.push(demand);
    demands.set(dep.name, list);
    if (dep.conflict) {
      conflicts.push(demand);
      continue;
    }
    if (request.base?.has(dep.name) && !request.fromRepositories?.has(dep.name)) {
      const have = request.base.get(dep.name);
      // A base version that is not an apk version (e.g. Debian's 2.36-9+deb12u4) cannot be compared: accept it.
      if (have === undefined || !isValidApkVersion(have) || versionOk(have, dep)) {
        fromBase.add(dep.name);
        continue;
      }
    }
    const present = offered.get(dep.name) ?? [];
    if (present.some((o) => versionOk(o.version, dep))) continue;
    // A need such as `ninja` or `git` is met by what the base provides under that name (cmd:, pc:, so:)
    // when no repository has a package of that name (melange's needs name commands as often as packages).
    if (demand.world && dep.op === undefined && present.length === 0 && !offers.has(dep.name)) {
      const alias = request.base ? baseProvision(request.base, dep.name) : undefined;
      if (alias !== undefined) {
        fromBase.add(alias);
        continue;
      }
    }
    if (present.length > 0) {
      // Something already chosen offers the name at another version: choose again knowing this demand.
      if (!(learnt.get(dep.name) ?? []).some((d) => d.dep.text === dep.text)) return { kind: 'learn', name: dep.name, demand };
    }
    const all = offers.get(dep.name) ?? [];
    const candidates = all.filter((o) => acceptable(o, dep.name, demand)).sort(better);
    const choice = candidates[0];
    if (choice === undefined) {
      const key = `${dep.name}`;
      if (reported.has(key)) continue;
      reported.add(key);
      if (all.length === 0) {
        missing.push(dep.name);
        problems.push(`${dep.name}: no such package (required by ${demand.by})`);
      } else {
        const wanted = [...(demands.get(dep.name) ?? []), ...(learnt.get(dep.name) ?? [])];
        const unique = [...new Map(wanted.map((d) => [`${d.dep.text}\0${d.by}`, d])).values()];
        const available = [...new Set(all.map((o) => (o.real ? o.pkg.pkgver : `${o.pkg.pkgname}-${o.pkg.pkgver} provides ${o.version ?? '(unversioned)'}`)))];
        problems.push(
          `${dep.name}: no version satisfies ${unique.map((d) => `${d.dep.text} (required by ${d.by})`).join(' and ')}; available: ${available.join(', ')}`,
        );
      }
      continue;
    }
    selected.set(choice.pkg.pkgname, choice);
    const realOffer: Offer<T> = { ...choice, version: choice.pkg.pkgver, real: true };
    offered.set(choice.pkg.pkgname, [...(offered.get(choice.pkg.pkgname) ?? []), realOffer]);
    for (const p of providedNames(choice.pkg)) {
      if (p.name === choice.pkg.pkgname) continue;
      offered.set(p.name, [...(offered.get(p.name) ?? []), { ...choice, version: p.version, real: false }]);
    }
    for (const d of choice.pkg.depend) {
      let parsed: Dependency;
      try {
        parsed = parseDependency(d);
      } catch (err) {
        problems.push(`${labelOf(choice.pkg)}: ${(err as Error).message}`);
        continue;
      }
      queue.push({ dep: parsed, by: labelOf(choice.pkg) });
    }
  }

  for (const c of conflicts) {
    const hit = (offered.get(c.dep.name) ?? []).filter((o) => c.dep.op === undefined || versionOk(o.version, { ...c.dep, conflict: false }));
    if (hit.length === 0) continue;
    const wanters = (demands.get(c.dep.name) ?? []).filter((d) => !d.dep.conflict).map((d) => d.by);
    problems.push(
      `${c.dep.name}: ${c.by} conflicts with it (${c.dep.text}), but ${hit.map((o) => labelOf(o.pkg)).join(', ')} is selected` +
        (wanters.length > 0 ? ` (required by ${[...new Set(wanters)].join(', ')})` : ''),
    );
  }
  return { kind: 'done', selected, fromBase, problems, missing };
}

/** Dependencies before dependents; members of a cycle in name order. Deterministic. */
function installOrder<T extends Resolvable>(selected: Map<string, Offer<T>>): ResolvedPackage<T>[] {
  const names = [...selected.keys()].sort();
  const providers = new Map<string, string[]>();
  for (const name of names) {
    const pkg = selected.get(name)!.pkg;
    for (const n of [pkg.pkgname, ...providedNames(pkg).map((p) => p.name)]) {
      providers.set(n, [...(providers.get(n) ?? []), name]);
    }
  }
  const edges = new Map<string, string[]>();
  for (const name of names) {
    const deps = new Set<string>();
    for (const d of selected.get(name)!.pkg.depend) {
      let dep: Dependency;
      try {
        dep = parseDependency(d);
      } catch {
        continue;
      }
      if (dep.conflict) continue;
      for (const p of providers.get(dep.name) ?? []) if (p !== name) deps.add(p);
    }
    edges.set(name, [...deps].sort());
  }
  // Tarjan's algorithm emits a component only after every component it reaches: dependencies first.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: ResolvedPackage<T>[] = [];
  let counter = 0;
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      for (;;) {
        const w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
        if (w === v) break;
      }
      for (const w of component.sort()) {
        const offer = selected.get(w)!;
        out.push({ pkg: offer.pkg, repository: offer.repository });
      }
    }
  };
  for (const name of names) if (!index.has(name)) visit(name);
  return out;
}
