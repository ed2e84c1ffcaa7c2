// Where the contents of the base initramfs come from. A source first makes a plan — what exactly would be
// used (package names and versions, index digests), cheap to compute, and what the cache digest covers — then
// fills an empty tree from that plan. One assembly step (base.ts) then picks from the tree what the VM needs,
// whichever source filled it.
import type { InitramfsContents } from '../seams.ts';
import { UsageError } from '../errors.ts';
import { type ApkSourcePlan, apkSourceIdentity, installApkSource, resolveApkSource } from './apk.ts';
import { hostArch } from '../pipeline/arch.ts';
import { type DebianSourcePlan, debianSourceIdentity, planDebianSource, populateDebianTree } from './debian.ts';

export const INITRAMFS_SOURCES = ['debian', 'apk'] as const;
export type InitramfsSource = (typeof INITRAMFS_SOURCES)[number];

export interface SourceRequest {
  from: InitramfsSource;
  /** Extra packages, as given (deduplicated and sorted by the caller). */
  packages: string[];
  /** --from apk only: repositories (directories or http(s) URLs holding `<arch>/APKINDEX.tar.gz`), in order. */
  repositories: string[];
  /** --from apk only: trusted public keys (files, directories of `*.pub`, or http(s) URLs). */
  keyring: string[];
  /** --from apk only: accept unsigned or untrusted indexes and packages. */
  ignoreSignatures: boolean;
  /** --from apk only: the architecture in apk's naming (default: the host's). */
  arch?: string;
  /** Where relative repository and key paths are resolved. */
  baseDir: string;
  /** Where downloaded indexes, packages and keys are kept. */
  downloadDir: string;
  log: (line: string) => void;
}

export type SourcePlan = { from: 'debian'; debian: DebianSourcePlan } | { from: 'apk'; apk: ApkSourcePlan };

/** Checks the request and works out what the contents will be made of, without filling anything yet. */
export async function planSource(request: SourceRequest): Promise<SourcePlan> {
  if (request.from === 'debian') {
    const apkOnly = [
      request.repositories.length > 0 ? '--repository' : undefined,
      request.keyring.length > 0 ? '--keyring' : undefined,
      request.ignoreSignatures ? '--ignore-signatures' : undefined,
    ].filter((f) => f !== undefined);
    if (apkOnly.length > 0) throw new UsageError(`${apkOnly.join(', ')}: only used with --from apk (the source here is debian)`);
    return { from: 'debian', debian: await planDebianSource(request.packages) };
  }
  return {
    from: 'apk',
    apk: await resolveApkSource({
      repositories: request.repositories,
      keyring: request.keyring,
      ignoreSignatures: request.ignoreSignatures,
      arch: request.arch ?? hostArch(),
      baseDir: request.baseDir,
      downloadDir: request.downloadDir,
      extra: request.packages,
      log: request.log,
    }),
  };
}

/** Plain data naming everything the planned contents depend on: part of the archive's digest. */
export function sourceIdentity(plan: SourcePlan): unknown {
  return plan.from === 'debian' ? debianSourceIdentity(plan.debian) : apkSourceIdentity(plan.apk);
}

/** Fills `tree` (an empty directory) from the plan; `work` is private scratch space. */
export async function populateSource(
  plan: SourcePlan,
  dirs: { tree: string; work: string },
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<InitramfsContents> {
  return plan.from === 'debian' ? populateDebianTree(plan.debian, dirs, log, signal) : installApkSource(plan.apk, dirs.tree, log, signal);
}
