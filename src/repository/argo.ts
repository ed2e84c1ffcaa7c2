// The graph as an Argo Workflows `Workflow`: a DAG template with one task per recipe (its `dependencies` are
// the graph's edges), each task running `builder build` on one recipe in the given image, and a last task
// that merges every task's packages into the repository and signs its index. Nothing here talks to a
// cluster: the output is a manifest for `argo submit` / `kubectl create`.
//
// The shared volume holds the recipes (`<mount>/recipes`), one out dir per task (`<mount>/tasks/<task>`)
// and the merged repository (`<mount>/packages`). A task writes only its own out dir, so no two pods ever
// update the same index; it reads its dependencies' out dirs as repositories. The final task is the only
// writer of the merged index.
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
  const layout = podLayout(options);
  const mounts = [
    { name: 'repository', mountPath: layout.mount },
    { name: 'signing-key', mountPath: layout.keyDir, readOnly: true },
    ...(options.runner === 'qemu' ? [{ name: 'kvm', mountPath: '/dev/kvm' }] : []),
  ];
  const buildTemplates = graph.nodes.map((node) => ({
    name: `build-${names.get(node.id)!}`,
    metadata: { labels: { 'builder.dev/recipe': names.get(node.id)! } },
    container: {
      image: options.image,
      command: ['builder'],
      args: layout.buildArgs(node, dependenciesOf(graph, node.id).map((d) => names.get(d)!), names.get(node.id)!),
      env: [{ name: 'CI', value: 'true' }],
      volumeMounts: mounts,
      securityContext: securityContext(options.runner),
    },
  }));
  const indexTemplate = {
    name: 'merge-index',
    container: {
      image: options.image,
      command: ['sh', '-c'],
      // Fixed text: recipe data never reaches the shell. Copies to a temp name first, then renames, so a
      // reader of the merged repository never sees a half-copied package.
      args: [layout.mergeScript],
      volumeMounts: mounts.filter((m) => m.name !== 'kvm'),
    },
  };
  const dag = {
    name: 'repository',
    dag: {
      tasks: [
        ...graph.nodes.map((node) => ({
          name: names.get(node.id)!,
          template: `build-${names.get(node.id)!}`,
          ...(node.dependsOn.length > 0 ? { dependencies: node.dependsOn.map((d) => names.get(d)!) } : {}),
        })),
        // Runs once every build has finished, whatever its result: what was built is published.
        { name: 'merge-index', template: 'merge-index', depends: graph.nodes.map((n) => finished(names.get(n.id)!)).join(' && ') },
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
      volumes: [
        { name: 'repository', persistentVolumeClaim: { claimName: options.pvc } },
        { name: 'signing-key', secret: { secretName: options.signingKeySecret } },
        ...(options.runner === 'qemu' ? [{ name: 'kvm', hostPath: { path: '/dev/kvm', type: 'CharDevice' } }] : []),
      ],
    },
  };
}
