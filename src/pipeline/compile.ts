// Recipe → build plan. All substitutions, `uses` resolution, `if` conditions and range expansion happen here;
// every problem of the recipe (and of the pipeline definitions it uses) is reported together.
import { posix } from 'node:path';
import { Problems, type Sourced } from '../config/decode.ts';
import { type LoadedRecipe, PACKAGE_NAME } from '../config/load.ts';
import { DEFAULT_RUN_AS, resolveRunAs } from '../config/run-as.ts';
import type { Checks, Dependencies, PipelineStep, Recipe, Scriptlets, SubpackageConfig, TestConfig } from '../config/schema.ts';
import { didYouMean } from '../config/suggest.ts';
import { ConfigError, formatLocation, UsageError } from '../errors.ts';
import { unimplementedLinterNames, unknownLinterNames, validLinterNames } from '../lint/settings.ts';
import { type ArchInfo, archInfo, knownArches } from './arch.ts';
import { ConditionSyntaxError, evaluateCondition } from './condition.ts';
import { type PipelineDefinition, PipelineLibrary } from './library.ts';
import {
  type AccountsPlan,
  type BuildPlan,
  CACHE_MOUNT,
  DEFAULT_PATH,
  type DependenciesPlan,
  type EnvironmentPlan,
  OUT_DIR,
  type PackagePlan,
  type SourcePlan,
  type StepPlan,
  type TestPlan,
  WORKSPACE,
} from './plan.ts';
import { layer, resolveName, type Scope, substitute } from './substitute.ts';
import { compileSource } from './source-plan.ts';
import { applyVarTransforms } from './var-transforms.ts';

export interface CompileOptions {
  arch: string;
  /** `--pipeline-dir` directories, searched in order before the built-in pipelines. */
  pipelineDirs?: string[];
  /** A library to share between compilations (its definitions are read once); overrides `pipelineDirs`. */
  library?: PipelineLibrary;
  /** Names of the recipe's `options` to enable (`--build-option`). */
  buildOptions?: string[];
  /** `--vars-file` values: over the recipe's `vars`, under the enabled options' vars. */
  vars?: Record<string, string>;
}

export function compileRecipe(loaded: LoadedRecipe, options: CompileOptions): BuildPlan {
  const arch = archInfo(options.arch);
  if (!arch) throw new UsageError(`--arch: unknown architecture "${options.arch}" (known: ${knownArches().join(', ')})`);
  const library = options.library ?? new PipelineLibrary(options.pipelineDirs ?? []);
  return new Compilation(loaded, arch, library, options.buildOptions ?? [], options.vars ?? {}).run();
}

/** Inputs whose values must be hex digests of a fixed length (melange checks these for every pipeline). */
const HEX_INPUTS: Record<string, number> = { 'expected-sha256': 64, 'expected-sha512': 128, 'expected-commit': 40 };
const HEX = /^[0-9a-fA-F]+$/;

/** A package the environment must have, and who asked for it (`file:line:col what`). */
interface Need {
  name: string;
  origin: string;
}

/** What the steps of one package (or one test) produce besides their scripts. */
interface Sink {
  steps: StepPlan[];
  needs: Need[];
  sources: SourcePlan[];
}

/** What a step passes down to the steps nested in it. */
interface Frame {
  scope: Scope;
  workdir: string;
  env: Record<string, string>;
  /** Where the recipe asked for the step, `file:line:col`. */
  origin: string;
  /** Inside a pipeline definition: its display label and the chain of `uses` names. */
  label?: string;
  uses?: string;
  stack: string[];
}

interface SubpackageInstance {
  sub: SubpackageConfig;
  path: string;
  scope: Scope;
  name: string;
  /** Set when the name was checked by the loader already (no range, no `if`). */
  rawName?: string;
}

class Compilation {
  private readonly problems = new Problems();
  private readonly recipe: Recipe;
  private readonly file: string;
  private readonly arch: ArchInfo;
  private readonly library: PipelineLibrary;
  private readonly buildOptions: string[];
  private readonly varsOverride: Record<string, string>;
  /** Linters `checks` names that builder does not implement → where the first of them was named. */
  private readonly skippedLinters = new Map<string, string>();

  constructor(loaded: LoadedRecipe, arch: ArchInfo, library: PipelineLibrary, buildOptions: string[], varsOverride: Record<string, string>) {
    this.recipe = loaded.recipe;
    this.file = loaded.file;
    this.arch = arch;
    this.library = library;
    this.buildOptions = buildOptions;
    this.varsOverride = varsOverride;
  }

  run(): BuildPlan {
    const { recipe } = this;
    const pkg = recipe.package!;
    const name = pkg.name!.value;
    const version = pkg.version!.value;
    const epoch = pkg.epoch ?? 0;
    const declaredOptions = recipe.options ?? {};
    for (const opt of this.buildOptions) {
      if (!Object.hasOwn(declaredOptions, opt)) {
        const known = Object.keys(declaredOptions);
        throw new UsageError(
          `--build-option: the recipe has no option "${opt}"${didYouMean(opt, known)}${known.length ? ` (options: ${known.join(', ')})` : ' (it declares no options)'}`,
        );
      }
    }

    const base = this.baseScope(name, version, epoch);
    const envPackages = this.environmentPackages(base);
    const env: Record<string, string> = { PATH: DEFAULT_PATH, HOME: WORKSPACE };
    for (const [k, v] of Object.entries(recipe.environment?.environment ?? {})) {
      env[k] = substitute(v, base, `environment.environment.${k}`, this.problems);
    }

    const instances = this.expandSubpackages(base, name);
    const skippedPackages: BuildPlan['skippedPackages'] = [];
    const built = instances.filter((inst) => {
      if (!inst.sub.if) return true;
      const run = this.condition(inst.sub.if, inst.scope, `${inst.path}.if`);
      if (!run) skippedPackages.push({ name: inst.name, reason: `if: ${inst.sub.if.value.trim()} (${formatLocation(inst.sub.if.loc)})` });
      return run;
    });
    this.checkPackageNames(name, built);
    for (const n of [name, ...built.map((b) => b.name)]) base.set(`targets.package.${n}`, `${OUT_DIR}/${n}`);

    const mainScope = contextScope(base, name, undefined);
    const sink: Sink = { steps: [], needs: [], sources: [] };
    const main: PackagePlan = {
      name,
      version,
      epoch,
      origin: name,
      description: pkg.description ? substitute(pkg.description, mainScope, 'package.description', this.problems) : '',
      url: pkg.url ? substitute(pkg.url, mainScope, 'package.url', this.problems) : '',
      commit: pkg.commit ?? '',
      licenses: licensesOf(pkg.copyright),
      dependencies: this.dependencies(pkg.dependencies, mainScope, 'package.dependencies'),
      options: optionsPlan(pkg.options),
      checks: this.checks(pkg.checks, 'package.checks'),
      ...scriptletPlan(pkg.scriptlets),
      steps: this.packageSteps(recipe.pipeline ?? [], 'pipeline', mainScope, sink),
      ...this.testPlan(recipe.test, 'test', mainScope, name),
    };
    const packages = [main];
    for (const inst of built) packages.push(this.subpackage(inst, main, sink));

    const accounts = this.accounts();
    const runAs = this.runAs(accounts);
    if (this.problems.list.length > 0) throw new ConfigError(dedupe(this.problems.list));
    const environment: EnvironmentPlan = {
      repositories: recipe.environment?.contents?.repositories ?? [],
      keyring: recipe.environment?.contents?.keyring ?? [],
      ...packageList([...envPackages, ...sink.needs]),
      env,
      runAs,
      accounts,
    };
    return {
      recipeFile: this.file,
      arch: this.arch.arch,
      environment,
      capabilities: { add: recipe.capabilities?.add ?? [], drop: recipe.capabilities?.drop ?? [] },
      resources: resourcesOf(pkg.resources),
      sources: sink.sources,
      packages,
      skippedPackages,
      targetArchitecture: pkg['target-architecture'] ?? [],
      buildOptions: [...this.buildOptions],
      notices: [...this.skippedLinters].map(([n, where]) => `linter "${n}" is not implemented by builder, skipped (${where})`),
      ...(pkg.timeout !== undefined ? { timeout: pkg.timeout } : {}),
    };
  }

  // ---------------------------------------------------------------------------------------------------
  // Names

  private baseScope(name: string, version: string, epoch: number): Map<string, string> {
    const { arch, recipe } = this;
    const musl = (triplet: string) => triplet.replace(/-gnu$/, '-musl');
    const base = new Map<string, string>([
      ['package.name', name],
      ['package.version', version],
      ['package.epoch', String(epoch)],
      ['package.full-version', `${version}-r${epoch}`],
      ['package.description', recipe.package?.description?.value ?? ''],
      ['package.srcdir', WORKSPACE],
      ['targets.outdir', OUT_DIR],
      ['targets.destdir', `${OUT_DIR}/${name}`],
      ['build.arch', arch.arch],
      ['build.goarch', arch.goarch],
      ['host.triplet.gnu', arch.gnuTriplet],
      ['host.triplet.rust', arch.rustTriplet],
      ['cross.triplet.gnu.glibc', arch.gnuTriplet],
      ['cross.triplet.gnu.musl', musl(arch.gnuTriplet)],
      ['cross.triplet.rust.glibc', arch.rustTriplet],
      ['cross.triplet.rust.musl', musl(arch.rustTriplet)],
    ]);
    for (const [k, v] of Object.entries({ ...recipe.vars, ...this.varsOverride })) base.set(`vars.${k}`, v);
    for (const opt of Object.keys(recipe.options ?? {})) base.set(`options.${opt}.enabled`, 'false');
    for (const opt of this.buildOptions) {
      base.set(`options.${opt}.enabled`, 'true');
      for (const [k, v] of Object.entries(recipe.options?.[opt]?.vars ?? {})) base.set(`vars.${k}`, v);
    }
    applyVarTransforms(this.recipe['var-transforms'] ?? [], base, this.problems);
    return base;
  }

  private environmentPackages(base: Scope): Need[] {
    let packages = this.listedPackages(this.recipe.environment?.contents?.packages, 'environment.contents.packages', base);
    for (const opt of this.buildOptions) {
      const option = this.recipe.options?.[opt];
      const change = option?.environment?.contents?.packages;
      const remove = new Set(change?.remove ?? []);
      const origin = `${formatLocation((change ?? option ?? this.recipe).loc)} options.${opt}.environment.contents.packages.add`;
      packages = [...packages.filter((p) => !remove.has(p.name)), ...(change?.add ?? []).map((name) => ({ name, origin }))];
    }
    return packages.filter((p) => p.name !== '');
  }

  /** `contents.packages` entries, substituted, each with the place it was written. */
  private listedPackages(list: Sourced[] | undefined, path: string, scope: Scope): Need[] {
    return (list ?? []).map((p) => ({ name: substitute(p, scope, path, this.problems), origin: `${formatLocation(p.loc)} ${path}` }));
  }

  private accounts(): AccountsPlan {
    const acc = this.recipe.environment?.accounts;
    const users: AccountsPlan['users'] = (acc?.users ?? []).map((u) => ({
      username: u.username ?? '',
      ...(u.uid !== undefined ? { uid: u.uid } : {}),
      ...(u.gid !== undefined ? { gid: u.gid } : {}),
      ...(u.shell !== undefined ? { shell: u.shell } : {}),
      ...(u.homedir !== undefined ? { homedir: u.homedir } : {}),
    }));
    const groups: AccountsPlan['groups'] = (acc?.groups ?? []).map((g) => ({
      groupname: g.groupname ?? '',
      ...(g.gid !== undefined ? { gid: g.gid } : {}),
      members: g.members ?? [],
    }));
    // melange always adds the build user and group the steps run as.
    if (!groups.some((g) => g.groupname === 'build')) groups.push({ groupname: 'build', gid: 1000, members: ['build'] });
    if (!users.some((u) => u.username === 'build')) users.push({ username: 'build', uid: 1000, gid: 1000 });
    return { ...(acc?.['run-as']?.value ? { runAs: acc['run-as'].value } : {}), users, groups };
  }

  private runAs(accounts: AccountsPlan): { uid: number; gid: number } {
    const resolved = resolveRunAs(accounts.runAs, accounts.users);
    if (resolved.ok) return { uid: resolved.uid, gid: resolved.gid };
    const loc = this.recipe.environment?.accounts?.['run-as']?.loc ?? this.recipe.loc;
    this.problems.add(loc, 'environment.accounts.run-as', resolved.message);
    return { ...DEFAULT_RUN_AS };
  }

  // ---------------------------------------------------------------------------------------------------
  // Subpackages

  private expandSubpackages(base: Scope, mainName: string): SubpackageInstance[] {
    const data = new Map<string, Record<string, string>>();
    (this.recipe.data ?? []).forEach((d, i) => {
      const name = d.name ?? '';
      if (data.has(name)) this.problems.add(d.loc, `data[${i}].name`, `duplicate data name "${name}"`);
      else data.set(name, d.items ?? {});
    });
    const out: SubpackageInstance[] = [];
    (this.recipe.subpackages ?? []).forEach((sub, i) => {
      const path = `subpackages[${i}]`;
      const add = (scope: Scope, where: string, loaderChecked: boolean) => {
        const name = substitute(sub.name!, scope, `${where}.name`, this.problems);
        out.push({ sub, path: where, scope: contextScope(scope, name, mainName), name, ...(loaderChecked ? { rawName: sub.name!.value } : {}) });
      };
      // `range: ""` is no range, as in melange.
      if (!sub.range || sub.range.value.trim() === '') {
        add(base, path, !sub.if);
        return;
      }
      const items = data.get(sub.range.value);
      if (!items) {
        const known = [...data.keys()];
        this.problems.add(
          sub.range.loc,
          `${path}.range`,
          `range "${sub.range.value}" names no data entry${didYouMean(sub.range.value, known)}${known.length === 0 ? ' (the recipe has no "data")' : ''}`,
        );
        return;
      }
      for (const key of Object.keys(items).sort()) {
        const scope = layer(base, new Map([['range.key', key], ['range.value', items[key] ?? '']]));
        add(scope, `${path}[${key}]`, false);
      }
    });
    return out;
  }

  private checkPackageNames(mainName: string, built: SubpackageInstance[]): void {
    const seen = new Map<string, SubpackageInstance>();
    for (const inst of built) {
      const loc = inst.sub.name!.loc;
      if (inst.rawName === undefined || inst.rawName.includes('${{')) {
        // A name still holding "${{" had an undefined substitution, reported already.
        if (!PACKAGE_NAME.test(inst.name) && !inst.name.includes('${{')) {
          this.problems.add(loc, `${inst.path}.name`, `invalid package name "${inst.name}": must match ${PACKAGE_NAME.source}`);
        }
        if (inst.name === mainName && inst.rawName !== mainName) {
          this.problems.add(loc, `${inst.path}.name`, `subpackage "${inst.name}" has the main package's name`);
        }
      }
      const earlier = seen.get(inst.name);
      if (!earlier) {
        seen.set(inst.name, inst);
        continue;
      }
      // The loader already reported identical names written identically outside ranges and conditions.
      if (earlier.rawName !== undefined && earlier.rawName === inst.rawName) continue;
      const first = earlier.sub.name!.loc;
      this.problems.add(loc, `${inst.path}.name`, `duplicate subpackage name "${inst.name}" (first at ${first.line}:${first.col})`);
    }
  }

  private subpackage(inst: SubpackageInstance, main: PackagePlan, sink: Sink): PackagePlan {
    const { sub, path, scope, name } = inst;
    return {
      name,
      version: main.version,
      epoch: main.epoch,
      origin: main.name,
      description: sub.description ? substitute(sub.description, scope, `${path}.description`, this.problems) : main.description,
      url: sub.url ? substitute(sub.url, scope, `${path}.url`, this.problems) : main.url,
      commit: sub.commit ?? main.commit,
      licenses: sub.copyright ? licensesOf(sub.copyright) : main.licenses,
      dependencies: this.dependencies(sub.dependencies, scope, `${path}.dependencies`),
      options: optionsPlan(sub.options),
      checks: this.checks(sub.checks, `${path}.checks`),
      ...scriptletPlan(sub.scriptlets),
      steps: this.packageSteps(sub.pipeline ?? [], `${path}.pipeline`, scope, sink),
      ...this.testPlan(sub.test, `${path}.test`, scope, name),
    };
  }

  /** Linter names are checked here so a typo is reported with its location before anything runs. */
  private checks(checks: Checks | undefined, path: string): PackagePlan['checks'] {
    const enabled = checks?.enabled ?? [];
    const disabled = checks?.disabled ?? [];
    const unknown = unknownLinterNames([...enabled, ...disabled]);
    for (const n of unimplementedLinterNames([...enabled, ...disabled])) {
      if (checks && !this.skippedLinters.has(n)) this.skippedLinters.set(n, `${formatLocation(checks.loc)} ${path}`);
    }
    if (checks && unknown.length > 0) {
      this.problems.add(checks.loc, path, `unknown linter ${unknown.map((n) => `"${n}"`).join(', ')} (valid: ${validLinterNames().join(', ')})`);
    }
    return { enabled, disabled };
  }

  private dependencies(deps: Dependencies | undefined, scope: Scope, path: string): DependenciesPlan {
    const subst = (list: Sourced[] | undefined, key: string) =>
      (list ?? []).map((d) => substitute(d, scope, `${path}.${key}`, this.problems)).filter((d) => d !== '');
    return {
      runtime: subst(deps?.runtime, 'runtime'),
      provides: subst(deps?.provides, 'provides'),
      replaces: subst(deps?.replaces, 'replaces'),
      ...optional('providerPriority', this.priority(deps?.['provider-priority'], scope, `${path}.provider-priority`)),
      ...optional('replacesPriority', this.priority(deps?.['replaces-priority'], scope, `${path}.replaces-priority`)),
    };
  }

  /** A priority is a string in melange: substituted first, then it must be a whole number ("" is unset). */
  private priority(raw: Sourced | undefined, scope: Scope, path: string): number | undefined {
    if (!raw) return undefined;
    const before = this.problems.list.length;
    const text = substitute(raw, scope, path, this.problems).trim();
    if (this.problems.list.length > before || text === '') return undefined;
    if (/^\d+$/.test(text)) return Number(text);
    const key = path.split('.').pop();
    const from = text === raw.value.trim() ? `found "${text}"` : `"${raw.value.trim()}" gives "${text}"`;
    this.problems.add(raw.loc, path, `${key} must be an integer, ${from}`);
    return undefined;
  }

  private testPlan(test: TestConfig | undefined, path: string, scope: Scope, pkgName: string): { test?: TestPlan } {
    if (!test) return {};
    const sink: Sink = { steps: [], needs: [], sources: [] };
    const env: Record<string, string> = { PATH: DEFAULT_PATH, HOME: WORKSPACE };
    for (const [k, v] of Object.entries(test.environment?.environment ?? {})) {
      env[k] = substitute(v, scope, `${path}.environment.environment.${k}`, this.problems);
    }
    const listed = this.listedPackages(test.environment?.contents?.packages, `${path}.environment.contents.packages`, scope);
    const underTest = { name: pkgName, origin: `${formatLocation(test.loc)} ${path} (the package under test)` };
    this.compileSteps(test.pipeline ?? [], `${path}.pipeline`, rootFrame(scope), sink);
    const { packages, origins } = packageList([...listed, underTest, ...sink.needs]);
    return {
      test: {
        environment: {
          repositories: test.environment?.contents?.repositories ?? [],
          keyring: test.environment?.contents?.keyring ?? [],
          packages: packages.sort(),
          origins,
          env,
        },
        steps: sink.steps,
        sources: sink.sources,
      },
    };
  }

  // ---------------------------------------------------------------------------------------------------
  // Steps

  private packageSteps(steps: PipelineStep[], path: string, scope: Scope, shared: Sink): StepPlan[] {
    const sink: Sink = { steps: [], needs: shared.needs, sources: shared.sources };
    this.compileSteps(steps, path, rootFrame(scope), sink);
    return sink.steps;
  }

  /** Compiles a list of steps; returns how many of them run (their `if` holds). */
  private compileSteps(steps: PipelineStep[], path: string, frame: Frame, sink: Sink): number {
    let ran = 0;
    steps.forEach((step, i) => {
      if (this.compileStep(step, `${path}[${i}]`, frame, sink)) ran++;
    });
    return ran;
  }

  private compileStep(step: PipelineStep, path: string, parent: Frame, sink: Sink): boolean {
    if (step.if && !this.condition(step.if, parent.scope, `${path}.if`)) return false;
    const frame: Frame = {
      ...this.nested(step, path, parent),
      // Steps written in the recipe are their own origin; steps of a definition keep the recipe's `uses:` line.
      origin: parent.label === undefined ? formatLocation((step.runs ?? step.uses ?? step).loc) : parent.origin,
    };
    // A step of the recipe asked for its own needs; a step of a definition for the recipe's `uses:` line.
    this.collectNeeds(step, path, frame.scope, sink, (entry) =>
      parent.label === undefined ? `${formatLocation(entry.loc)} ${path}.needs.packages` : `${parent.origin} uses: ${parent.uses} (needs.packages)`,
    );
    if (step.uses) {
      this.compileUses(step, step.uses, path, frame, sink);
      return true;
    }
    if (step.runs) this.emit(step.runs, step.name, path, frame, sink);
    if (step.pipeline) this.checkAssertions(step, path, this.compileSteps(step.pipeline, `${path}.pipeline`, frame, sink));
    return true;
  }

  /** The frame a step's own script and its nested steps run in: its working directory and environment. */
  private nested(step: PipelineStep, path: string, parent: Frame): Frame {
    let workdir = parent.workdir;
    if (step['working-directory']) {
      const dir = substitute(step['working-directory'], parent.scope, `${path}.working-directory`, this.problems);
      // As in melange, a relative working directory is under /home/build, whatever the parent's.
      if (dir !== '') workdir = dir.startsWith('/') ? posix.normalize(dir) : posix.join(WORKSPACE, dir);
    }
    let env = parent.env;
    if (step.environment) {
      env = { ...parent.env };
      for (const [k, v] of Object.entries(step.environment)) env[k] = substitute(v, parent.scope, `${path}.environment.${k}`, this.problems);
    }
    return { ...parent, workdir, env };
  }

  private compileUses(step: PipelineStep, uses: Sourced, path: string, frame: Frame, sink: Sink): void {
    const name = uses.value.trim();
    const usesPath = `${path}.uses`;
    if (frame.stack.includes(name)) {
      this.problems.add(uses.loc, usesPath, `pipeline "${name}" uses itself (${[...frame.stack, name].join(' → ')})`);
      return;
    }
    const hit = this.library.find(name);
    if (!hit.found) {
      for (const p of hit.problems) {
        if (p.location.file === '') this.problems.add(uses.loc, usesPath, `"uses: ${name}": ${p.message}`);
        else this.problems.list.push({ ...p, path: `${usesPath} (${name})${p.path ? `: ${p.path}` : ''}` });
      }
      return;
    }
    const def = hit.definition;
    const defPath = `${path} → ${name}`;
    const before = this.problems.list.length;
    const inputs = this.inputs(step, uses, def, path, defPath, frame.scope);
    const scope = layer(frame.scope, inputs);
    const inputsFailed = this.problems.list.length > before;
    if (def.config.source) {
      const src = compileSource(def.config.source, def, step, uses, path, defPath, scope, inputsFailed, this.problems);
      if (src && !sink.sources.some((s) => s.cacheName === src.cacheName)) sink.sources.push(src);
      inputs.set('source.path', src ? `${CACHE_MOUNT}/${src.cacheName}` : '');
    }
    const label = step.name
      ? substitute(step.name, frame.scope, `${path}.name`, this.problems, isInputName)
      : frame.label === undefined
        ? name
        : `${frame.label} > ${name}`;
    const inner: Frame = {
      ...this.nested(def.config, defPath, { ...frame, scope }),
      scope,
      label,
      uses: frame.uses ? `${frame.uses} > ${name}` : name,
      stack: [...frame.stack, name],
    };
    this.collectNeeds(def.config, defPath, scope, sink, () => `${frame.origin} uses: ${inner.uses} (needs.packages)`);
    if (def.config.runs) this.emit(def.config.runs, undefined, defPath, inner, sink);
    if (def.config.pipeline) {
      this.checkAssertions(def.config, defPath, this.compileSteps(def.config.pipeline, `${defPath}: pipeline`, inner, sink));
    }
  }

  /** `with` checked against the definition's `inputs`; returns `inputs.<name>` → value for every declared input. */
  private inputs(step: PipelineStep, uses: Sourced, def: PipelineDefinition, path: string, defPath: string, scope: Scope): Map<string, string> {
    const declared = def.config.inputs ?? {};
    const given = step.with ?? {};
    const names = Object.keys(declared);
    const values = new Map<string, string>();
    for (const [key, value] of Object.entries(given)) {
      if (!Object.hasOwn(declared, key)) {
        const hint = didYouMean(key, names) || (names.length ? ` (inputs: ${names.join(', ')})` : ' (it takes no inputs)');
        this.problems.add(value.loc, `${path}.with.${key}`, `unknown input "${key}" for pipeline "${def.name}"${hint}`);
        continue;
      }
      values.set(`inputs.${key}`, substitute(value, scope, `${path}.with.${key}`, this.problems));
    }
    for (const [key, input] of Object.entries(declared)) {
      let value = values.get(`inputs.${key}`) ?? '';
      // A nested pipeline inherits the parent pipeline's resolved inputs (melange); its own `with` wins.
      if (value === '' && !Object.hasOwn(given, key)) value = scope.get(`inputs.${key}`) ?? '';
      // An empty value takes the default, as in melange; defaults may use the caller's substitutions.
      if (value === '' && input.default) value = substitute(input.default, scope, `${defPath}: inputs.${key}.default`, this.problems);
      if (input.required && value === '') {
        const where = given[key]?.loc ?? uses.loc;
        this.problems.add(where, `${path}.with`, `pipeline "${def.name}" needs input "${key}"${input.description ? ` (${oneLine(input.description)})` : ''}`);
      }
      const length = HEX_INPUTS[key];
      if (length !== undefined && value !== '' && (value.length !== length || !HEX.test(value))) {
        const where = given[key]?.loc ?? uses.loc;
        this.problems.add(
          where,
          `${path}.with.${key}`,
          `${key} must be ${length} hexadecimal characters, found "${value}" (${value.length} character${value.length === 1 ? '' : 's'})`,
        );
      }
      values.set(`inputs.${key}`, value);
    }
    return values;
  }

  private emit(runs: Sourced, name: Sourced | undefined, path: string, frame: Frame, sink: Sink): void {
    const script = substitute(runs, frame.scope, `${path}.runs`, this.problems);
    const own = name ? substitute(name, frame.scope, `${path}.name`, this.problems, isInputName) : undefined;
    const display = frame.label === undefined ? (own ?? firstLine(script)) : own ? `${frame.label}: ${own}` : frame.label;
    sink.steps.push({
      name: display,
      script,
      workdir: frame.workdir,
      env: { ...frame.env },
      source: frame.origin,
      ...(frame.uses ? { uses: frame.uses } : {}),
    });
  }

  private collectNeeds(step: PipelineStep, path: string, scope: Scope, sink: Sink, origin: (entry: Sourced) => string): void {
    for (const p of step.needs?.packages ?? []) {
      const name = substitute(p, scope, `${path}.needs.packages`, this.problems).trim();
      if (name !== '') sink.needs.push({ name, origin: origin(p) });
    }
  }

  private checkAssertions(step: PipelineStep, path: string, ran: number): void {
    const required = step.assertions?.['required-steps'];
    if (required === undefined || required === ran) return;
    this.problems.add(
      step.assertions!.loc,
      `${path}.assertions.required-steps`,
      `${required} nested step${required === 1 ? '' : 's'} must run, but ${ran} would on ${this.arch.arch} (check their "if" conditions)`,
    );
  }

  private condition(text: Sourced, scope: Scope, path: string): boolean {
    const before = this.problems.list.length;
    try {
      const result = evaluateCondition(text.value, (name) => resolveName(name, scope, text, path, this.problems));
      // With an undefined name the result means nothing; compile what it guards so its problems show too.
      return result || this.problems.list.length > before;
    } catch (err) {
      if (!(err instanceof ConditionSyntaxError)) throw err;
      this.problems.add(text.loc, path, `invalid condition "${text.value.trim()}": ${err.message}`);
      // Compile what it guards anyway, so its problems are reported too.
      return true;
    }
  }
}

/** Names a step's `name` may leave unsubstituted when undefined, as melange does. */
function isInputName(name: string): boolean {
  return name.startsWith('inputs.');
}

function rootFrame(scope: Scope): Frame {
  return { scope, workdir: WORKSPACE, env: {}, origin: '', stack: [] };
}

/** Scope for one package being built: `targets.contextdir`, `targets.subpkgdir`, `subpkg.name`, `context.name`. */
function contextScope(base: Scope, name: string, mainName: string | undefined): Scope {
  const own = new Map([
    ['targets.contextdir', `${OUT_DIR}/${name}`],
    ['context.name', name],
  ]);
  if (mainName !== undefined) {
    own.set('targets.subpkgdir', `${OUT_DIR}/${name}`);
    own.set('subpkg.name', name);
  }
  return layer(base, own);
}

function optional<K extends string, V>(key: K, value: V | undefined): { [k in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [k in K]?: V };
}

function licensesOf(copyright: { license?: string }[] | undefined): string[] {
  return (copyright ?? []).map((c) => c.license ?? '').filter((l) => l !== '');
}

function optionsPlan(options: NonNullable<Recipe['package']>['options']): PackagePlan['options'] {
  return {
    noProvides: options?.['no-provides'] ?? false,
    noDepends: options?.['no-depends'] ?? false,
    noCommands: options?.['no-commands'] ?? false,
  };
}

function scriptletPlan(s: Scriptlets | undefined): Pick<PackagePlan, 'scriptlets' | 'triggerPaths'> {
  const scriptlets: Record<string, string> = {};
  for (const key of ['pre-install', 'post-install', 'pre-deinstall', 'post-deinstall', 'pre-upgrade', 'post-upgrade'] as const) {
    const v = s?.[key];
    if (v) scriptlets[key] = v;
  }
  if (s?.trigger?.script) scriptlets.trigger = s.trigger.script;
  return { scriptlets, triggerPaths: s?.trigger?.paths ?? [] };
}

function resourcesOf(r: NonNullable<Recipe['package']>['resources']): BuildPlan['resources'] {
  return {
    ...(r?.cpu !== undefined ? { cpu: r.cpu } : {}),
    ...(r?.memory !== undefined ? { memory: r.memory } : {}),
    ...(r?.disk !== undefined ? { disk: r.disk } : {}),
  };
}

function firstLine(script: string): string {
  for (const line of script.split('\n')) {
    const t = line.trim();
    if (t !== '' && !t.startsWith('#')) return t;
  }
  return '';
}

function oneLine(text: string): string {
  const t = text.trim().split('\n')[0]!.trim();
  return t.length > 80 ? `${t.slice(0, 77)}...` : t;
}

/** Package names in first-asked order, with every distinct origin of each. */
function packageList(needs: Need[]): { packages: string[]; origins: Record<string, string[]> } {
  const origins = new Map<string, string[]>();
  for (const { name, origin } of needs) {
    if (name === '') continue;
    const list = origins.get(name);
    if (!list) origins.set(name, [origin]);
    else if (!list.includes(origin)) list.push(origin);
  }
  return { packages: [...origins.keys()], origins: Object.fromEntries(origins) };
}

function dedupe(problems: ConfigError['problems']): ConfigError['problems'] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${formatLocation(p.location)}\0${p.location.line === 0 ? p.path : ''}\0${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
