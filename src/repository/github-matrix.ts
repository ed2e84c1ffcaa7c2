// The graph as a GitHub Actions workflow: one job per wave (the recipes whose dependencies are all in
// earlier waves), each a `strategy.matrix` over its recipes. Packages travel between waves as artifacts:
// a job uploads only its .apk files; the next wave downloads them all and indexes them locally, so no two
// jobs ever write one index. A last job merges everything into one signed repository artifact.
import { relative } from 'node:path';
import { type RecipeGraph, waves } from './graph.ts';
import { type ScaleOutOptions, taskNames } from './scale-out.ts';

type Json = Record<string, unknown>;

const KEY = '${{ runner.temp }}/builder.rsa';

function keySteps(options: ScaleOutOptions): Json[] {
  return [
    {
      name: 'Signing key',
      env: { KEY: `\${{ secrets.${options.signingKeySecret} }}` },
      run: `printf '%s\\n' "$KEY" > "${KEY}"\nopenssl rsa -in "${KEY}" -pubout -out "${KEY}.pub"`,
    },
  ];
}

function indexStep(arch: string, dir: string): Json {
  return {
    name: 'Index the packages of earlier waves',
    run: `set -- ${dir}/${arch}/*.apk\n[ -e "$1" ] || exit 0\nbuilder index --signing-key "${KEY}" -o ${dir}/${arch}/APKINDEX.tar.gz "$@"`,
  };
}

function download(arch: string): Json {
  return { uses: 'actions/download-artifact@v4', with: { pattern: 'packages-*', path: `packages/${arch}`, 'merge-multiple': true } };
}

export function githubWorkflow(graph: RecipeGraph, options: ScaleOutOptions): Json {
  const names = taskNames(graph);
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const layers = waves(graph);
  const container = {
    image: options.image,
    // Bubblewrap needs namespaces the default seccomp/AppArmor profiles refuse; the VM needs /dev/kvm.
    options: options.runner === 'qemu' ? '--device /dev/kvm' : '--security-opt seccomp=unconfined --security-opt apparmor=unconfined',
  };
  const jobs: Record<string, Json> = {};
  layers.forEach((layer, i) => {
    jobs[`wave-${i}`] = {
      name: `wave ${i}: \${{ matrix.recipe }}`,
      'runs-on': 'ubuntu-latest',
      container,
      // Later waves run even when a recipe of an earlier one failed: a recipe whose dependency is missing
      // fails at its root, the others build.
      ...(i > 0 ? { needs: [`wave-${i - 1}`], if: '${{ !cancelled() }}' } : {}),
      strategy: {
        'fail-fast': false,
        matrix: { include: layer.map((id) => ({ recipe: names.get(id)!, file: relative(options.recipesDir, byId.get(id)!.file) })) },
      },
      steps: [
        { uses: 'actions/checkout@v4' },
        ...keySteps(options),
        ...(i > 0 ? [download(options.arch), indexStep(options.arch, 'packages')] : []),
        {
          name: 'Build',
          // The recipe's path reaches the shell as a variable, never spliced into the script.
          env: { RECIPE: '${{ matrix.file }}', CI: 'true' },
          run:
            `builder build "$RECIPE" --arch ${options.arch} --runner ${options.runner} --out-dir out --signing-key "${KEY}" --keyring-append "${KEY}.pub"` +
            (i > 0 ? ' --repository-append packages' : ''),
        },
        { uses: 'actions/upload-artifact@v4', with: { name: 'packages-${{ matrix.recipe }}', path: `out/${options.arch}/*.apk`, 'if-no-files-found': 'ignore' } },
      ],
    };
  });
  jobs.repository = {
    'runs-on': 'ubuntu-latest',
    container,
    needs: layers.map((_, i) => `wave-${i}`),
    // Publish what was built even when some recipe failed (the workflow still fails).
    if: '${{ always() }}',
    steps: [
      ...keySteps(options),
      download(options.arch),
      indexStep(options.arch, 'packages'),
      { uses: 'actions/upload-artifact@v4', with: { name: 'repository', path: 'packages' } },
    ],
  };
  return { name: 'builder repository', on: { workflow_dispatch: {} }, jobs };
}
