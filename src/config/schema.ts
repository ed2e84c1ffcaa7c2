// The recipe schema: every key melange recipes use, as decoders. The TypeScript model types are derived
// from these decoders, so the schema is the single source of truth for what a recipe may contain.
import {
  bool,
  type Decoded,
  type Decoder,
  dict,
  duration,
  int,
  lazy,
  list,
  obj,
  sourced,
  sourcedDict,
  type Sourced,
  str,
} from './decode.ts';
import type { SourceLocation } from '../errors.ts';

const strings = list(str);
const stringMap = dict(str);

const copyright = obj({ license: str, paths: strings, attestation: str, 'license-path': str, 'detection-override': str });
const dependencies = obj({
  runtime: list(sourced),
  provides: list(sourced),
  replaces: list(sourced),
  // Strings in melange: substituted first (`${{range.value}}`), then checked to be integers by the compiler.
  'provider-priority': sourced,
  'replaces-priority': sourced,
});
const packageOptions = obj({ 'no-provides': bool, 'no-depends': bool, 'no-commands': bool, 'no-versioned-shlib-deps': bool });
const scriptlets = obj({
  'pre-install': str,
  'post-install': str,
  'pre-deinstall': str,
  'post-deinstall': str,
  'pre-upgrade': str,
  'post-upgrade': str,
  trigger: obj({ script: str, paths: strings }),
});
const resources = obj({ cpu: str, cpumodel: str, memory: str, disk: str });
const checks = obj({ enabled: strings, disabled: strings });
const cpe = obj({
  part: str,
  vendor: str,
  product: str,
  edition: str,
  language: str,
  sw_edition: str,
  target_sw: str,
  target_hw: str,
  other: str,
});
const setcap = obj({ path: str, add: stringMap, reason: str });

export interface PipelineStep {
  loc: SourceLocation;
  name?: Sourced;
  uses?: Sourced;
  with?: Record<string, Sourced>;
  runs?: Sourced;
  pipeline?: PipelineStep[];
  if?: Sourced;
  'working-directory'?: Sourced;
  environment?: Record<string, Sourced>;
  needs?: { loc: SourceLocation; packages?: Sourced[] };
  assertions?: { loc: SourceLocation; 'required-steps'?: number };
  inputs?: Record<string, PipelineInput>;
  label?: string;
}
export type PipelineInput = Decoded<typeof inputShape>;
const inputShape = { description: str, default: sourced, required: bool };

/** The step keys; `lenient` decodes nested steps of pipeline definition files the way melange does. */
function stepShapeOf(lenient: boolean) {
  const self: Decoder<PipelineStep[]> = lazy(() => (lenient ? lenientPipeline : pipeline));
  return {
    name: sourced,
    uses: sourced,
    with: sourcedDict,
    runs: sourced,
    pipeline: self,
    if: sourced,
    'working-directory': sourced,
    environment: sourcedDict,
    needs: obj({ packages: list(sourced) }, { lenient }),
    assertions: obj({ 'required-steps': int }, { lenient }),
    inputs: dict(obj(inputShape, { lenient })),
    label: str,
  };
}
const step = obj(stepShapeOf(false)) as Decoder<PipelineStep>;
const lenientStep = obj(stepShapeOf(true), { lenient: true }) as Decoder<PipelineStep>;
const pipeline: Decoder<PipelineStep[]> = list(step);
const lenientPipeline: Decoder<PipelineStep[]> = list(lenientStep);

const accounts = obj({
  'run-as': sourced,
  users: list(obj({ username: str, uid: int, gid: int, shell: str, homedir: str }, { required: ['username'] })),
  groups: list(obj({ groupname: str, gid: int, members: strings }, { required: ['groupname'] })),
});
const contents = obj({
  repositories: strings,
  build_repositories: strings,
  runtime_repositories: strings,
  keyring: strings,
  packages: list(sourced),
  baseimage: obj({ image: str, apkindex: str }),
});
// melange embeds apko's image configuration here; the image-only keys are accepted and ignored.
const environmentShape = {
  contents,
  environment: sourcedDict,
  accounts,
  archs: strings,
  entrypoint: obj({ type: str, command: str, 'shell-fragment': str, services: stringMap }),
  cmd: str,
  'stop-signal': str,
  'work-dir': str,
  paths: list(
    obj({ path: str, type: str, uid: int, gid: int, permissions: int, source: str, recursive: bool }),
  ),
  'vcs-url': str,
  annotations: stringMap,
  include: str,
  volumes: strings,
  layering: obj({ strategy: str, budget: int }),
  certificates: obj({ additional: list(obj({ name: str, content: str })), providers: strings }),
};
const environment = obj(environmentShape);

const test = obj({ environment, pipeline });

const packageShape = {
  name: sourced,
  version: sourced,
  epoch: int,
  description: sourced,
  url: sourced,
  commit: str,
  copyright: list(copyright),
  dependencies,
  options: packageOptions,
  scriptlets,
  resources,
  'test-resources': resources,
  'target-architecture': strings,
  checks,
  annotations: stringMap,
  cpe,
  timeout: duration,
  setcap: list(setcap),
};

const subpackage = obj(
  {
    name: sourced,
    description: sourced,
    pipeline,
    dependencies,
    options: packageOptions,
    scriptlets,
    checks,
    range: sourced,
    if: sourced,
    test,
    url: sourced,
    commit: str,
    copyright: list(copyright),
    annotations: stringMap,
    setcap: list(setcap),
  },
  { required: ['name'] },
);

const monitor = { 'strip-prefix': str, 'strip-suffix': str, 'tag-filter-prefix': str, 'tag-filter-contains': str };
const update = obj({
  enabled: bool,
  manual: bool,
  'require-sequential': bool,
  shared: bool,
  'version-separator': str,
  'ignore-regex-patterns': strings,
  'release-monitor': obj({ identifier: str, 'strip-prefix': str, 'strip-suffix': str, 'version-filter-contains': str, 'version-filter-prefix': str }),
  github: obj({ identifier: str, 'tag-filter': str, 'use-tag': bool, ...monitor }),
  git: obj(monitor),
  oci: obj({ identifier: str, ...monitor }),
  version_data: obj({
    version_format: str,
    sources: list(obj({ name: str, stream: str, ignore: strings, commit_source: str, use_release: bool })),
  }),
  'version-transform': list(obj({ match: str, replace: str })),
  'exclude-reason': str,
  schedule: obj({ reason: str, period: str }),
  'enable-prerelease-tags': bool,
});

const listOption = obj({ add: strings, remove: strings });
const buildOption = obj({ vars: stringMap, environment: obj({ contents: obj({ packages: listOption }) }) });

export const recipeShape = {
  package: obj(packageShape, { required: ['name', 'version'] }),
  environment,
  pipeline,
  subpackages: list(subpackage),
  test,
  data: list(obj({ name: str, items: dict((node, path, problems) => (node.kind === 'scalar' ? (node.value ?? '') : str(node, path, problems))) }, { required: ['name'] })),
  vars: stringMap,
  'var-transforms': list(obj({ from: sourced, match: sourced, replace: str, to: str }, { required: ['from', 'match', 'to'] })),
  capabilities: obj({ add: strings, drop: strings }),
  options: dict(buildOption),
  update,
};

export const recipeDecoder = obj(recipeShape, { required: ['package'] });

/**
 * Where a pipeline definition's source comes from, fetched on the host before the sandbox starts (a builder
 * extension to melange's definition format; the sandbox step finds the result at `${{source.path}}`).
 */
export interface SourceConfig {
  loc: SourceLocation;
  fetch?: Decoded<typeof fetchSourceShape>;
  git?: Decoded<typeof gitSourceShape>;
}
const fetchSourceShape = {
  uri: sourced,
  'expected-sha256': sourced,
  'expected-sha512': sourced,
  'expected-none': sourced,
  timeout: sourced,
  'dns-timeout': sourced,
  'retry-limit': sourced,
  'purl-name': sourced,
  'purl-version': sourced,
};
const gitSourceShape = {
  repository: sourced,
  branch: sourced,
  tag: sourced,
  'expected-commit': sourced,
  'expected-commit-is-branch-tip': sourced,
  depth: sourced,
  'recurse-submodules': sourced,
  'shallow-submodules': sourced,
  'submodule-jobs': sourced,
  'sparse-paths': sourced,
  'cherry-picks': sourced,
  'max-retries': sourced,
  'initial-backoff': sourced,
  'max-backoff': sourced,
  'type-hint': sourced,
  reason: sourced,
};
const sourceDecoder = obj({ fetch: obj(fetchSourceShape), git: obj(gitSourceShape) }) as Decoder<SourceConfig>;

/** A pipeline definition file (`uses:` target): a step plus documentation and an optional host-side source. */
export interface PipelineDefinitionConfig extends PipelineStep {
  description?: Sourced;
  source?: SourceConfig;
}

/** Pipeline definition files are read leniently, like melange does: unknown keys are ignored. */
export const pipelineDefinitionDecoder = obj(
  { ...stepShapeOf(true), description: sourced, source: sourceDecoder },
  { lenient: true },
) as Decoder<PipelineDefinitionConfig>;

export type Recipe = Decoded<typeof recipeShape>;
export type PackageConfig = NonNullable<Recipe['package']>;
export type SubpackageConfig = NonNullable<Recipe['subpackages']>[number];
export type EnvironmentConfig = NonNullable<Recipe['environment']>;
export type Dependencies = NonNullable<PackageConfig['dependencies']>;
export type Scriptlets = NonNullable<PackageConfig['scriptlets']>;
export type TestConfig = NonNullable<Recipe['test']>;
export type Checks = NonNullable<PackageConfig['checks']>;
