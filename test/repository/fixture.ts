// A small, host-less world for repository builds: a signed APK repository holding only Debian's busybox-static
// (every applet linked), so each recipe's root is busybox plus what it needs from the out dir, made in a
// second; and recipes whose steps check that their dependencies' files are installed.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { busyboxTree } from '../helpers/busybox.ts';
import { generateSigningKey, loadSigningKey } from '../../src/apk/keys.ts';
import { packageTree, writeIndex } from '../initramfs/apk-repository.ts';

export interface BusyboxRepository {
  dir: string;
  publicKey: string;
}

export async function busyboxRepository(work: string): Promise<BusyboxRepository> {
  const keyPath = join(work, 'busybox-repo.rsa');
  const { publicPath } = await generateSigningKey(keyPath, { bits: 2048 });
  const key = await loadSigningKey(keyPath);
  const dir = join(work, 'repo');
  const busybox = await packageTree(dir, key, await busyboxTree(work), { pkgname: 'busybox', pkgver: '1.35.0-r0', depend: [], provides: [] });
  await writeIndex(dir, key, [busybox.entry]);
  return { dir, publicKey: publicPath };
}

export interface RecipeSpec {
  name: string;
  needs?: string[];
  /** Make the build fail. */
  fail?: boolean;
  /** Test-environment needs (edges too). */
  testNeeds?: string[];
  /** A shell line of work for the step (the benchmark's stand-in for compiling). */
  work?: string;
}

/** A recipe whose build checks each dependency's marker file in its root and installs its own. */
export function recipeText(spec: RecipeSpec, repo: BusyboxRepository): string {
  const checks = (spec.needs ?? []).map((n) => `      cat /usr/share/${n}/marker`).join('\n');
  const test = spec.testNeeds
    ? `test:
  environment:
    contents:
      packages: [${spec.testNeeds.join(', ')}]
  pipeline:
    - runs: "true"
`
    : '';
  return `package:
  name: ${spec.name}
  version: 1.0.0
  epoch: 0
  description: repository build test
  copyright:
    - license: MIT
environment:
  contents:
    repositories: [${repo.dir}]
    keyring: [${repo.publicKey}]
    packages: [busybox${(spec.needs ?? []).map((n) => `, ${n}`).join('')}]
pipeline:
  - runs: |
${checks || '      true'}
      ${spec.fail ? 'echo "this recipe fails"; exit 3' : (spec.work ?? 'true')}
      mkdir -p "\${{targets.destdir}}/usr/share/${spec.name}"
      echo "marker of ${spec.name}" > "\${{targets.destdir}}/usr/share/${spec.name}/marker"
${test}`;
}

export async function writeRecipes(dir: string, specs: RecipeSpec[], repo: BusyboxRepository): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const s of specs) await writeFile(join(dir, `${s.name}.yaml`), recipeText(s, repo));
}
