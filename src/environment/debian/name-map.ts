// The package-name map: what a Wolfi/Alpine package name (as melange recipes write them) means on a Debian
// base. The built-in map is data (names.yaml beside this file); `--package-map FILE` adds to it or overrides
// it, entry by entry. Every entry keeps the file:line:col it came from, for errors.
import { readFile } from 'node:fs/promises';
import { ConfigError, type ConfigProblem, type SourceLocation } from '../../errors.ts';
import { parseYaml, type YMap, type YNode } from '../../config/yaml-source.ts';
import { digestOf } from '../cache.ts';

export interface MapEntry {
  /** Debian packages to install; empty means "nothing to install on Debian". */
  packages: string[];
  loc: SourceLocation;
}

export interface Family {
  /** `go-{v}`, `py3-supported-{rest}`: `{v}` is a version, `{rest}` the rest of the name. */
  match: RegExp;
  pattern: string;
  what?: string;
  lookup?: string;
  packages: string[];
  versions: Record<string, string>;
  loc: SourceLocation;
}

export interface PackageMap {
  names: ReadonlyMap<string, MapEntry>;
  families: readonly Family[];
  /** Identifies the map's content, for the root's cache key. */
  digest: string;
  /** The user's map file, when one was given. */
  file?: string;
}

export interface MappedName {
  packages: string[];
  /** Where the decision came from, e.g. `built-in map` or `./map.yaml:3:1`. */
  source: string;
  loc: SourceLocation;
  /** A family whose version differs from the suite's: one line naming both. */
  warning?: string;
}

const BUILTIN = new URL('./names.yaml', import.meta.url);
const DEBIAN_NAME = /^[a-z0-9][a-z0-9+.-]+$/;

function problemsOf(list: ConfigProblem[]): never {
  throw new ConfigError(list);
}

function stringList(node: YNode, path: string, problems: ConfigProblem[]): string[] {
  if (node.kind === 'scalar' && node.value === null) return [];
  if (node.kind !== 'seq') {
    problems.push({ location: node.loc, path, message: 'expected a list of Debian package names, e.g. [zlib1g-dev] ([] to drop)' });
    return [];
  }
  const out: string[] = [];
  node.items.forEach((item, i) => {
    if (item.kind !== 'scalar' || item.value === null || !DEBIAN_NAME.test(item.value)) {
      problems.push({ location: item.loc, path: `${path}[${i}]`, message: 'not a Debian package name' });
    } else out.push(item.value);
  });
  return out;
}

function namesOf(node: YMap, prefix: string, problems: ConfigProblem[]): Map<string, MapEntry> {
  const names = new Map<string, MapEntry>();
  for (const e of node.entries) {
    names.set(e.key, { packages: stringList(e.value, `${prefix}${e.key}`, problems), loc: e.keyLoc });
  }
  return names;
}

function compileFamily(pattern: string): RegExp {
  const escaped = pattern.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace('{v}', '(?<v>[0-9][0-9.]*)').replace('{rest}', '(?<rest>[a-z0-9][a-z0-9+._-]*)')}$`);
}

function familiesOf(node: YNode, problems: ConfigProblem[]): Family[] {
  if (node.kind !== 'seq') {
    problems.push({ location: node.loc, path: 'families', message: 'expected a list' });
    return [];
  }
  const out: Family[] = [];
  node.items.forEach((item, i) => {
    const path = `families[${i}]`;
    if (item.kind !== 'map') {
      problems.push({ location: item.loc, path, message: 'expected a map with match and packages' });
      return;
    }
    const field = (key: string): YNode | undefined => item.entries.find((e) => e.key === key)?.value;
    const scalar = (key: string): string | undefined => {
      const n = field(key);
      return n?.kind === 'scalar' && n.value !== null ? n.value : undefined;
    };
    const match = scalar('match');
    if (!match) {
      problems.push({ location: item.loc, path: `${path}.match`, message: 'missing' });
      return;
    }
    const versions: Record<string, string> = {};
    const v = field('versions');
    if (v?.kind === 'map') for (const e of v.entries) if (e.value.kind === 'scalar' && e.value.value) versions[e.key] = e.value.value;
    const packagesNode = field('packages');
    const raw = packagesNode?.kind === 'seq' ? packagesNode.items.flatMap((p) => (p.kind === 'scalar' && p.value ? [p.value] : [])) : [];
    if (packagesNode?.kind !== 'seq' || raw.length !== packagesNode.items.length || raw.some((p) => !DEBIAN_NAME.test(p.replace('{rest}', 'x')))) {
      problems.push({ location: packagesNode?.loc ?? item.loc, path: `${path}.packages`, message: 'expected a list of Debian package names ({rest} allowed)' });
      return;
    }
    const family: Family = { match: compileFamily(match), pattern: match, packages: raw, versions, loc: item.loc };
    const what = scalar('what');
    const lookup = scalar('lookup');
    if (what) family.what = what;
    if (lookup) family.lookup = lookup;
    out.push(family);
  });
  return out;
}

function parseMap(text: string, file: string, builtin: boolean): PackageMap {
  const root = parseYaml(text, file);
  const problems: ConfigProblem[] = [];
  if (root.kind === 'scalar' && root.value === null) return { names: new Map(), families: [], digest: digestOf({}), file };
  if (root.kind !== 'map') problemsOf([{ location: root.loc, path: '', message: 'a package map is a YAML map of name: [debian, packages]' }]);
  let names: Map<string, MapEntry>;
  let families: Family[] = [];
  if (builtin) {
    const namesNode = root.entries.find((e) => e.key === 'names')?.value;
    const familiesNode = root.entries.find((e) => e.key === 'families')?.value;
    names = namesNode?.kind === 'map' ? namesOf(namesNode, 'names.', problems) : new Map();
    if (familiesNode) families = familiesOf(familiesNode, problems);
  } else {
    names = namesOf(root, '', problems);
  }
  if (problems.length > 0) problemsOf(problems);
  const digest = digestOf({
    names: [...names].map(([k, v]) => [k, v.packages]),
    families: families.map((f) => [f.pattern, f.lookup ?? '', f.packages, f.versions]),
  });
  return builtin ? { names, families, digest } : { names, families, digest, file };
}

let builtinMap: Promise<PackageMap> | undefined;

/** The built-in map, read once per process (it is immutable data shipped with builder). */
export function builtinPackageMap(): Promise<PackageMap> {
  builtinMap ??= readFile(BUILTIN, 'utf8').then((text) => parseMap(text, 'src/environment/debian/names.yaml', true));
  return builtinMap;
}

/** Reads a `--package-map` file: `name: [debian, packages]`, `name: []` to drop. */
export async function readPackageMapFile(file: string): Promise<PackageMap> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([{ location: { file, line: 0, col: 0 }, path: '', message: `--package-map: cannot read the file (${code === 'ENOENT' ? 'no such file' : String(code)})` }]);
  }
  return parseMap(text, file, false);
}

/** The built-in map with a user's map over it (the user's entries win). */
export async function packageMapFor(file: string | undefined): Promise<PackageMap> {
  const builtin = await builtinPackageMap();
  if (file === undefined) return builtin;
  const user = await readPackageMapFile(file);
  const names = new Map(builtin.names);
  for (const [k, v] of user.names) names.set(k, v);
  return { names, families: builtin.families, digest: digestOf({ builtin: builtin.digest, user: user.digest }), file };
}

function sourceOf(map: PackageMap, entry: MapEntry): string {
  return map.file !== undefined && entry.loc.file === map.file ? `${entry.loc.file}:${entry.loc.line}:${entry.loc.col}` : 'built-in map';
}

/** What `name` means on Debian `suite`, or undefined when the map does not know it. */
export function mapPackageName(map: PackageMap, name: string, suite: string): MappedName | undefined {
  const direct = map.names.get(name);
  if (direct) return { packages: direct.packages, source: sourceOf(map, direct), loc: direct.loc };
  for (const family of map.families) {
    const m = family.match.exec(name);
    if (!m) continue;
    const v = m.groups?.['v'];
    const rest = m.groups?.['rest'] ?? '';
    const looked = family.lookup ? map.names.get(family.lookup.replace('{rest}', rest)) : undefined;
    const packages = looked ? looked.packages : family.packages.map((p) => p.replace('{rest}', rest));
    const have = family.versions[suite];
    const result: MappedName = { packages, source: looked ? sourceOf(map, looked) : `built-in family ${family.pattern}`, loc: looked?.loc ?? family.loc };
    if (v !== undefined && have !== undefined && v !== have && family.what) {
      result.warning = `${name}: asks for ${family.what} ${v}; Debian ${suite} has ${family.what} ${have} (${packages.join(', ') || 'nothing'})`;
    }
    return result;
  }
  return undefined;
}
