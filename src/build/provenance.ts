// `--generate-provenance`: SLSA provenance for each package built, in `<name>-<version>-r<epoch>.attest.tar.gz`
// next to the .apk, as melange writes it (pkg/build/slsa.go). The archive is one gzip member holding a tar with
// one file, `<name>-<version>-r<epoch>.apk.intoto.json`: an in-toto Statement v1 whose subject is the .apk (its
// file name and the SHA-256 of the whole file) and whose predicate is SLSA provenance v1: what was built
// (recipe, repository, commit, arch, options), from what (the sources as fetched, with their digests, and the
// recipe's commit), by what and when (wall-clock start and end, as melange records them; so unlike the .apk the
// attestation differs from one run to the next).
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeBufferAtomic } from '../apk/atomic.ts';
import { gzipMember } from '../apk/gzip.ts';
import { encodeTarEntry, TAR_END_OF_ARCHIVE } from '../apk/tar.ts';
import type { BuildPlan } from '../pipeline/plan.ts';
import type { PreparedSource } from '../sources/prepare.ts';
import { VERSION } from '../version.ts';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const PROVENANCE_TYPE = 'https://slsa.dev/provenance/v1';
/** builder has no web home of its own: its build type and identity are URNs rather than made-up URLs. */
export const BUILD_TYPE = 'urn:builder:buildtypes:melange-recipe:v1';
export const BUILDER_ID = 'urn:builder:builders:builder:v1';

export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest: Record<string, string>;
}

export interface ProvenanceStatement {
  _type: typeof STATEMENT_TYPE;
  subject: ResourceDescriptor[];
  predicateType: typeof PROVENANCE_TYPE;
  predicate: {
    buildDefinition: {
      buildType: string;
      externalParameters: Record<string, unknown>;
      internalParameters: Record<string, unknown>;
      resolvedDependencies: ResourceDescriptor[];
    };
    runDetails: {
      builder: { id: string; version: Record<string, string> };
      metadata: { invocationId: string; startedOn: string; finishedOn: string };
    };
  };
}

export interface ProvenanceInput {
  plan: Pick<BuildPlan, 'recipeFile' | 'arch' | 'buildOptions'>;
  /** The recipe's file name, repository (`--git-repo-url`) and commit, as the SBOM names them. */
  recipe: { path: string; repositoryUrl?: string; commit?: string };
  sources: PreparedSource[];
  /** The sandbox the steps ran in. */
  runner: string;
  namespace: string;
  startedOn: Date;
  finishedOn: Date;
  /** Build invocation, shared by the packages of one build. */
  invocationId: string;
}

export function newInvocationId(): string {
  return randomUUID();
}

export function provenanceStatement(apk: { file: string; sha256: string }, input: ProvenanceInput): ProvenanceStatement {
  const { recipe } = input;
  const dependencies: ResourceDescriptor[] = [];
  if (recipe.commit) {
    dependencies.push({ name: recipe.path, ...(recipe.repositoryUrl ? { uri: `git+${recipe.repositoryUrl}` } : {}), digest: { gitCommit: recipe.commit } });
  }
  for (const s of input.sources) dependencies.push(sourceDescriptor(s));
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: apk.file, digest: { sha256: apk.sha256 } }],
    predicateType: PROVENANCE_TYPE,
    predicate: {
      buildDefinition: {
        buildType: BUILD_TYPE,
        externalParameters: {
          recipe: recipe.path,
          ...(recipe.repositoryUrl ? { repository: recipe.repositoryUrl } : {}),
          ...(recipe.commit ? { commit: recipe.commit } : {}),
          arch: input.plan.arch,
          buildOptions: input.plan.buildOptions,
          namespace: input.namespace,
        },
        internalParameters: { runner: input.runner },
        resolvedDependencies: dependencies,
      },
      runDetails: {
        builder: { id: BUILDER_ID, version: { builder: VERSION } },
        metadata: { invocationId: input.invocationId, startedOn: input.startedOn.toISOString(), finishedOn: input.finishedOn.toISOString() },
      },
    },
  };
}

function sourceDescriptor({ source, sha256, commit }: PreparedSource): ResourceDescriptor {
  if (source.kind === 'git') {
    const rev = commit ?? source.expectedCommit;
    return { uri: `git+${source.repository}`, digest: rev ? { gitCommit: rev } : {} };
  }
  const digest: Record<string, string> = {};
  const sha = sha256 ?? source.sha256;
  if (sha) digest.sha256 = sha.toLowerCase();
  if (source.sha512) digest.sha512 = source.sha512.toLowerCase();
  return { uri: source.uri, digest };
}

/** `<dir>/<name>-<version>-r<epoch>.attest.tar.gz` for `<dir>/<name>-<version>-r<epoch>.apk`. */
export function provenancePath(apkPath: string): string {
  return join(dirname(apkPath), `${basename(apkPath, '.apk')}.attest.tar.gz`);
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Writes the attestation of one built .apk beside it (temp name, then renamed); returns its path. */
export async function writeProvenance(apkPath: string, input: ProvenanceInput, mtime: number): Promise<string> {
  const file = basename(apkPath);
  const statement = provenanceStatement({ file, sha256: await sha256File(apkPath) }, input);
  const json = Buffer.from(`${JSON.stringify(statement, null, 2)}\n`);
  const entry = { name: `${file}.intoto.json`, type: 'file' as const, mode: 0o644, size: json.length, mtime, uid: 0, gid: 0, uname: 'root', gname: 'root' };
  const target = provenancePath(apkPath);
  await writeBufferAtomic(target, gzipMember(Buffer.concat([encodeTarEntry(entry, json), TAR_END_OF_ARCHIVE])), { mode: 0o644, overwrite: true, sync: true });
  return target;
}
