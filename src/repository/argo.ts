// The graph as an Argo Workflows `Workflow`: a DAG template with one task per recipe (its `dependencies` are
// the graph's edges), each task running `builder build` on one recipe in the given image, and a last task
// that merges every task's packages into the repository and signs its index. Nothing here talks to a
// cluster: the output is a manifest for `argo submit` / `kubectl create`.
//
// A task writes only its own out dir (a directory on the shared volume, or its output artifact), so no two
// pods ever update the same index; it reads its dependencies' out dirs as repositories. The final task is the
// only writer of the merged index.
import { type RecipeGraph, dependenciesOf } from './graph.ts';
import { podLayout, type ScaleOutOptions, taskNames } from './scale-out.ts';

type Json = Record<string, unknown>;

function securityContext(runner: ScaleOutOptions['runner']): Json {
  return runner === 'qemu'
    ? // /dev/kvm from the node (a hostPath char device) is all the VM needs; no extra privileges.
      { allowPrivilegeEscalation: false }
    : // Bubblewrap makes user, mount, pid and network namespaces: the runtime's default seccomp and AppArmor
      // profiles refuse those, so the pod runs without them (still unprivileged, no added capabilities).
      { seccompProfile: { type: 'Unconfined' }, appArmorProfile: { type: 'Unconfined' }, procMount: 'Unmasked' };
}

function finished(task: string): string {
  return `(${task}.Succeeded || ${task}.Failed || ${task}.Errored || ${task}.Omitted)`;
}

export function argoWorkflow(graph: RecipeGraph, options: ScaleOutOptions): Json {
  const names = taskNames(graph);
  const task = (id: string) => names.get(id)!;
  const layout = podLayout(options);
  const volume = options.storage === 'volume';
  const mounts = [
    ...(volume ? [{ name: 'repository', mountPath: '/repository' }] : []),
    { name: 'signing-key', mountPath: layout.keyDir, readOnly: true },
  ];
  const kvm = options.runner === 'qemu' ? [{ name: 'kvm', mountPath: '/dev/kvm' }] : [];
  const recipesArtifact = options.recipesGit && {
    name: 'recipes',
    path: '/work/recipes',
    git: { repo: options.recipesGit.repo, ...(options.recipesGit.revision ? { revision: options.recipesGit.revision } : {}) },
  };
  const dependencyArtifacts = (deps: string[], optional: boolean) => deps.map((d) => ({ name: `dep-${d}`, path: layout.dependencyDir(d), ...(optional ? { optional: true } : {}) }));
  const fromTasks = (deps: string[]) => deps.map((d) => ({ name: `dep-${d}`, from: `{{tasks.${d}.outputs.artifacts.packages}}` }));

  const buildTemplates = graph.nodes.map((node) => {
    const deps = dependenciesOf(graph, node.id).map(task);
    return {
      name: `build-${task(node.id)}`,
      ...(volume ? {} : { inputs: { artifacts: [...(recipesArtifact ? [recipesArtifact] : []), ...dependencyArtifacts(deps, false)] }, outputs: { artifacts: [{ name: 'packages', path: layout.outDir(task(node.id)) }] } }),
      container: {
        image: options.image,
        command: ['builder'],
        args: layout.buildArgs(node, deps, task(node.id)),
        env: [{ name: 'CI', value: 'true' }],
        volumeMounts: [...mounts, ...kvm],
        securityContext: securityContext(options.runner),
      },
    };
  });
  const all = graph.nodes.map((n) => task(n.id));
  const indexTemplate = {
    name: 'merge-index',
    // A failed task has no packages artifact: the merge takes what there is.
    ...(volume ? {} : { inputs: { artifacts: dependencyArtifacts(all, true) }, outputs: { artifacts: [{ name: 'repository', path: layout.mergedDir }] } }),
    container: {
      image: options.image,
      command: ['sh', '-c'],
      // Fixed text: recipe data never reaches the shell. Copies to a temp name first, then renames, so a
      // reader of the merged repository never sees a half-copied package.
      args: [layout.mergeScript],
      volumeMounts: mounts,
    },
  };
  const dag = {
    name: 'repository',
    dag: {
      tasks: [
        ...graph.nodes.map((node) => {
          const deps = dependenciesOf(graph, node.id).map(task);
          return {
            name: task(node.id),
            template: `build-${task(node.id)}`,
            ...(node.dependsOn.length > 0 ? { dependencies: node.dependsOn.map(task) } : {}),
            ...(!volume && deps.length > 0 ? { arguments: { artifacts: fromTasks(deps) } } : {}),
          };
        }),
        // Runs once every build has finished, whatever its result: what was built is published.
        {
          name: 'merge-index',
          template: 'merge-index',
          depends: all.map(finished).join(' && '),
          ...(volume ? {} : { arguments: { artifacts: fromTasks(all) } }),
        },
      ],
    },
  };
  return {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Workflow',
    metadata: { generateName: 'builder-repository-' },
    spec: {
      entrypoint: 'repository',
      // A failed recipe stops only its dependents: Argo skips tasks whose dependencies failed and keeps
      // running the others, as the local scheduler does.
      templates: [dag, ...buildTemplates, indexTemplate],
      ...(options.artifactRepositoryRef && !volume ? { artifactRepositoryRef: options.artifactRepositoryRef } : {}),
      volumes: [
        ...(volume ? [{ name: 'repository', persistentVolumeClaim: { claimName: options.pvc } }] : []),
        { name: 'signing-key', secret: { secretName: options.signingKeySecret } },
        ...(options.runner === 'qemu' ? [{ name: 'kvm', hostPath: { path: '/dev/kvm', type: 'CharDevice' } }] : []),
      ],
    },
  };
}
