// Recipe → build plan. All substitutions happen here; every problem of the recipe is reported together.
import { type Problems as ProblemsT, Problems, type Sourced } from '../config/decode.ts';
import type { LoadedRecipe } from '../config/load.ts';
import type { PipelineStep, Recipe, SubpackageConfig } from '../config/schema.ts';
import { ConfigError, formatLocation, UsageError } from '../errors.ts';
import { archInfo, knownArches } from './arch.ts';
import { type BuildPlan, DEFAULT_PATH, type PackagePlan, type StepPlan, OUT_DIR, WORKSPACE } from './plan.ts';
import { substitute, type Scope } from './substitute.ts';

export interface CompileOptions {
  arch: string;
}

export function compileRecipe(loaded: LoadedRecipe, options: CompileOptions): BuildPlan {
  const arch = archInfo(options.arch);
  if (!arch) throw new UsageError(`--arch: unknown architecture "${options.arch}" (known: ${knownArches().join(', ')})`);
  const { recipe, file } = loaded;
  const problems = new Problems();
  const pkg = recipe.package!;
  const name = pkg.name!.value;
  const version = pkg.version!.value;
  const epoch = pkg.epoch ?? 0;

  const base = new Map<string, string>([
    ['package.name', name],
    ['package.version', version],
    ['package.epoch', String(epoch)],
    ['package.full-version', `${version}-r${epoch}`],
    ['package.description', pkg.description?.value ?? ''],
    ['package.srcdir', WORKSPACE],
    ['targets.outdir', OUT_DIR],
    ['targets.destdir', `${OUT_DIR}/${name}`],
    ['build.arch', arch.arch],
    ['build.goarch', arch.goarch],
    ['host.triplet.gnu', arch.gnuTriplet],
    ['host.triplet.rust', arch.rustTriplet],
  ]);
  for (const [k, v] of Object.entries(recipe.vars ?? {})) base.set(`vars.${k}`, v);
  applyVarTransforms(recipe, base, problems);
  rejectUnsupported(recipe, problems);

  const envBase: Record<string, string> = { PATH: DEFAULT_PATH, HOME: WORKSPACE };
  for (const [k, v] of Object.entries(recipe.environment?.environment ?? {})) {
    envBase[k] = substitute(v, base, `environment.environment.${k}`, problems);
  }

  const mainScope = withContext(base, name, name);
  const main: PackagePlan = {
    name,
    version,
    epoch,
    origin: name,
    description: pkg.description?.value ?? '',
    url: pkg.url?.value ?? '',
    commit: pkg.commit ?? '',
    licenses: (pkg.copyright ?? []).map((c) => c.license ?? '').filter((l) => l !== ''),
    dependencies: dependencyPlan(pkg.dependencies, mainScope, 'package.dependencies', problems),
    options: optionsPlan(pkg.options),
    ...scriptletPlan(pkg.scriptlets),
    steps: compileSteps(recipe.pipeline ?? [], 'pipeline', mainScope, { workdir: WORKSPACE, env: {} }, problems),
  };
  const packages = [main];
  (recipe.subpackages ?? []).forEach((sub, i) => {
    packages.push(compileSubpackage(recipe, sub, `subpackages[${i}]`, base, main, problems));
  });

  if (problems.list.length > 0) throw new ConfigError(problems.list);
  return {
    recipeFile: file,
    arch: arch.arch,
    environment: {
      repositories: recipe.environment?.contents?.repositories ?? [],
      keyring: recipe.environment?.contents?.keyring ?? [],
      packages: (recipe.environment?.contents?.packages ?? []).map((p) => substitute(p, base, 'environment.contents.packages', problems)),
      env: envBase,
      runAs: { uid: 1000, gid: 1000 },
    },
    capabilities: { add: recipe.capabilities?.add ?? [], drop: recipe.capabilities?.drop ?? [] },
    resources: { ...stripLoc(pkg.resources) },
    packages,
  };
}

function compileSubpackage(
  recipe: Recipe,
  sub: SubpackageConfig,
  path: string,
  base: Scope,
  main: PackagePlan,
  problems: ProblemsT,
): PackagePlan {
  const name = substitute(sub.name!, base, `${path}.name`, problems);
  const scope = withContext(base, name, main.name);
  return {
    name,
    version: main.version,
    epoch: main.epoch,
    origin: main.name,
    description: sub.description ? substitute(sub.description, scope, `${path}.description`, problems) : main.description,
    url: sub.url?.value ?? main.url,
    commit: sub.commit ?? main.commit,
    licenses: sub.copyright ? sub.copyright.map((c) => c.license ?? '').filter((l) => l !== '') : main.licenses,
    dependencies: dependencyPlan(sub.dependencies, scope, `${path}.dependencies`, problems),
    options: optionsPlan(sub.options),
    ...scriptletPlan(sub.scriptlets),
    steps: compileSteps(sub.pipeline ?? [], `${path}.pipeline`, scope, { workdir: WORKSPACE, env: {} }, problems),
  };
}

/** Scope for one package being built: `targets.contextdir`, `targets.subpkgdir`, `subpkg.name`, `context.name`. */
function withContext(base: Scope, name: string, mainName: string): Scope {
  const scope = new Map(base);
  scope.set('targets.contextdir', `${OUT_DIR}/${name}`);
  scope.set('targets.subpkgdir', `${OUT_DIR}/${name}`);
  scope.set('context.name', name);
  if (name !== mainName) scope.set('subpkg.name', name);
  return scope;
}

interface Inherited {
  workdir: string;
  env: Record<string, string>;
}

function compileSteps(steps: PipelineStep[], path: string, scope: Scope, parent: Inherited, problems: ProblemsT): StepPlan[] {
  const out: StepPlan[] = [];
  steps.forEach((step, i) => {
    const p = `${path}[${i}]`;
    const here: Inherited = {
      workdir: step['working-directory']
        ? resolveWorkdir(substitute(step['working-directory'], scope, `${p}.working-directory`, problems), parent.workdir)
        : parent.workdir,
      env: { ...parent.env },
    };
    for (const [k, v] of Object.entries(step.environment ?? {})) here.env[k] = substitute(v, scope, `${p}.environment.${k}`, problems);
    if (step.runs) {
      const script = substitute(step.runs, scope, `${p}.runs`, problems);
      out.push({
        name: step.name ? substitute(step.name, scope, `${p}.name`, problems) : firstLine(script),
        script,
        workdir: here.workdir,
        env: here.env,
        source: formatLocation(step.runs.loc),
      });
    }
    if (step.pipeline) out.push(...compileSteps(step.pipeline, `${p}.pipeline`, scope, here, problems));
  });
  return out;
}

function resolveWorkdir(dir: string, parent: string): string {
  if (dir.startsWith('/')) return dir;
  return `${parent.replace(/\/$/, '')}/${dir}`.replace(/\/\.(?=\/|$)/g, '');
}

function firstLine(script: string): string {
  return script.trim().split('\n')[0]?.trim() ?? '';
}

function dependencyPlan(
  deps: NonNullable<Recipe['package']>['dependencies'],
  scope: Scope,
  path: string,
  problems: ProblemsT,
): PackagePlan['dependencies'] {
  const subst = (list: Sourced[] | undefined, key: string) =>
    (list ?? []).map((d) => substitute(d, scope, `${path}.${key}`, problems)).filter((d) => d !== '');
  return {
    runtime: subst(deps?.runtime, 'runtime'),
    provides: subst(deps?.provides, 'provides'),
    replaces: subst(deps?.replaces, 'replaces'),
    ...(deps?.['provider-priority'] !== undefined ? { providerPriority: deps['provider-priority'] } : {}),
    ...(deps?.['replaces-priority'] !== undefined ? { replacesPriority: deps['replaces-priority'] } : {}),
  };
}

function optionsPlan(options: NonNullable<Recipe['package']>['options']): PackagePlan['options'] {
  return {
    noProvides: options?.['no-provides'] ?? false,
    noDepends: options?.['no-depends'] ?? false,
    noCommands: options?.['no-commands'] ?? false,
  };
}

function scriptletPlan(s: NonNullable<Recipe['package']>['scriptlets']): Pick<PackagePlan, 'scriptlets' | 'triggerPaths'> {
  const scriptlets: Record<string, string> = {};
  for (const key of ['pre-install', 'post-install', 'pre-deinstall', 'post-deinstall', 'pre-upgrade', 'post-upgrade'] as const) {
    const v = s?.[key];
    if (v) scriptlets[key] = v;
  }
  if (s?.trigger?.script) scriptlets.trigger = s.trigger.script;
  return { scriptlets, triggerPaths: s?.trigger?.paths ?? [] };
}

function applyVarTransforms(recipe: Recipe, scope: Map<string, string>, problems: ProblemsT): void {
  (recipe['var-transforms'] ?? []).forEach((t, i) => {
    const path = `var-transforms[${i}]`;
    const from = substitute(t.from!, scope, `${path}.from`, problems);
    let re: RegExp;
    try {
      re = new RegExp(t.match!.value, 'g');
    } catch (err) {
      problems.add(t.match!.loc, `${path}.match`, `invalid regular expression: ${(err as Error).message}`);
      return;
    }
    // Go's regexp.ReplaceAllString spells group references $1 or ${1}; JavaScript only knows $1.
    const replacement = (t.replace ?? '').replace(/\$\{(\d+)\}/g, '$$$1');
    scope.set(`vars.${t.to}`, from.replace(re, replacement));
  });
}

/** Keys the compiler does not implement yet are refused rather than silently ignored. */
function rejectUnsupported(recipe: Recipe, problems: ProblemsT): void {
  const walk = (steps: PipelineStep[], path: string) =>
    steps.forEach((s, i) => {
      const p = `${path}[${i}]`;
      if (s.uses) problems.add(s.uses.loc, `${p}.uses`, `"uses: ${s.uses.value}": no pipeline of that name is available`);
      if (s.if) problems.add(s.if.loc, `${p}.if`, '"if" conditions are not supported by this version of builder');
      if (s.pipeline) walk(s.pipeline, `${p}.pipeline`);
    });
  walk(recipe.pipeline ?? [], 'pipeline');
  (recipe.subpackages ?? []).forEach((sub, i) => {
    const p = `subpackages[${i}]`;
    if (sub.range) problems.add(sub.range.loc, `${p}.range`, '"range" is not supported by this version of builder');
    if (sub.if) problems.add(sub.if.loc, `${p}.if`, '"if" conditions are not supported by this version of builder');
    walk(sub.pipeline ?? [], `${p}.pipeline`);
  });
}

function stripLoc<T extends { loc: unknown }>(o: T | undefined): Omit<T, 'loc'> | Record<string, never> {
  if (!o) return {};
  const { loc, ...rest } = o;
  void loc;
  return rest;
}
