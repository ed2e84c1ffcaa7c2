// `builder plan DIR --format json|argo|github-matrix`: the dependency graph of a directory of recipes, as data
// or as a workflow for an existing engine (Argo Workflows, GitHub Actions). See docs/scale-out.md.
import { stat } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import { stringify } from 'yaml';
import { UsageError } from '../../errors.ts';
import { hostArch } from '../../pipeline/arch.ts';
import { argoWorkflow } from '../../repository/argo.ts';
import { githubWorkflow } from '../../repository/github-matrix.ts';
import { buildGraph } from '../../repository/graph.ts';
import { repositoryPlanJson } from '../../repository/plan-json.ts';
import { checkExternalNeeds, loadRecipeSet } from '../../repository/recipes.ts';
import { collect } from '../options.ts';

interface PlanFlags {
  format: 'json' | 'argo' | 'github-matrix';
  arch: string;
  pipelineDir: string[];
  buildOption: string[];
  repositoryAppend: string[];
  base?: string;
  image?: string;
  runner: 'bubblewrap' | 'qemu';
  storage: 'volume' | 'artifacts';
  pvc: string;
  recipesGit?: string;
  recipesRevision?: string;
  artifactRepositoryRef?: string;
  signingKeySecret: string;
}

export function registerPlanCommand(program: Command): void {
  program
    .command('plan')
    .description('print the dependency graph of a directory of recipes: as JSON, an Argo Workflow or a GitHub Actions matrix workflow')
    .argument('<dir...>', 'directory of recipes (or recipe files)')
    .addOption(new Option('--format <format>', 'what to print').choices(['json', 'argo', 'github-matrix']).default('json'))
    .option('--arch <arch>', 'target architecture', hostArch())
    .option('--pipeline-dir <dir>', 'directory of pipeline definitions searched before the built-ins (repeatable)', collect, [])
    .option('--build-option <name>', 'enable a recipe build option from `options` (repeatable)', collect, [])
    .option('--repository-append <repo>', 'APK repository the builds will also have (checked for needs no recipe provides; repeatable)', collect, [])
    .option('--base <ref>', 'base the builds will use (its packages are not checked here)')
    .option('--image <ref>', 'argo, github-matrix: container image with builder (and bwrap or qemu) installed')
    .addOption(new Option('--runner <name>', 'argo, github-matrix: sandbox in the pods').choices(['bubblewrap', 'qemu']).default('bubblewrap'))
    .addOption(new Option('--storage <kind>', 'argo: where packages travel between tasks').choices(['volume', 'artifacts']).default('volume'))
    .option('--pvc <claim>', 'argo, volume storage: PersistentVolumeClaim with recipes/, per-task out dirs and the merged packages/', 'builder-repository')
    .option('--recipes-git <url>', 'argo, artifact storage: git repository the recipes are checked out from (same layout as DIR)')
    .option('--recipes-revision <rev>', 'argo, artifact storage: revision of --recipes-git')
    .option('--artifact-repository-ref <configmap:key>', "argo, artifact storage: the artifact repository (default: the controller's)")
    .option('--signing-key-secret <name>', 'argo: Secret with builder.rsa and builder.rsa.pub; github-matrix: the secret holding the private key', 'builder-signing-key')
    .addHelpText(
      'after',
      `
The graph is the one \`builder build DIR\` runs: edges from what each recipe's build and test environments
need to the recipe that provides it. Needs no recipe provides must be in a local repository (or come from
a base or a remote repository). Argo and GitHub output is YAML. See docs/scale-out.md.`,
    )
    .action(async (args: string[], flags: PlanFlags) => {
      if (flags.format !== 'json' && !flags.image) throw new UsageError(`--format ${flags.format} needs --image`);
      if (flags.format === 'argo' && flags.storage === 'artifacts' && !flags.recipesGit) throw new UsageError('--storage artifacts needs --recipes-git');
      const [configMap, key, ...rest] = (flags.artifactRepositoryRef ?? '').split(':');
      if (flags.artifactRepositoryRef !== undefined && (!configMap || !key || rest.length > 0)) {
        throw new UsageError(`--artifact-repository-ref: "${flags.artifactRepositoryRef}" is not CONFIGMAP:KEY`);
      }
      const recipes = await loadRecipeSet(args, { arch: flags.arch, pipelineDirs: flags.pipelineDir, buildOptions: flags.buildOption, note: (l) => process.stderr.write(`${l}\n`) });
      const graph = buildGraph(recipes);
      await checkExternalNeeds(graph, { arch: flags.arch, extraRepositories: flags.repositoryAppend, base: flags.base, baseDir: process.cwd() });
      const single = args.length === 1 && (await stat(args[0]!)).isDirectory();
      const options = {
        recipesDir: single ? args[0]! : '.',
        arch: flags.arch,
        image: flags.image ?? '',
        runner: flags.runner,
        storage: flags.storage,
        pvc: flags.pvc,
        ...(flags.recipesGit ? { recipesGit: { repo: flags.recipesGit, revision: flags.recipesRevision } } : {}),
        ...(configMap && key ? { artifactRepositoryRef: { configMap, key } } : {}),
        signingKeySecret: flags.signingKeySecret,
      };
      if (flags.format === 'json') process.stdout.write(`${JSON.stringify(repositoryPlanJson(graph, flags.arch), null, 2)}\n`);
      else process.stdout.write(stringify(flags.format === 'argo' ? argoWorkflow(graph, options) : githubWorkflow(graph, options), { lineWidth: 0, aliasDuplicateObjects: false }));
    });
}
