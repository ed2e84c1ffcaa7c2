// The hermetic environment: a root made only of what the recipe declares — a base (Debian via mmdebstrap, a
// directory, an OCI image, or nothing), APK packages resolved from the declared repositories on top, and the
// accounts — cached by content digest and handed to runners read-only.
//
// Two digests name a root. The request digest covers what was asked for and what it was resolved against
// (base reference, index file digests, keys, package list, accounts, flags): when it is known, the root is
// used with no index parsing, resolution, download or extraction. Otherwise the request is resolved and the
// content digest (base root digest + exact package names, versions and checksums + accounts) names the root,
// so two requests that resolve to the same packages share one root.
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { BuilderError } from '../errors.ts';
import { type Accounts, resolveAccounts, writeRootFiles } from './accounts.ts';
import { installPackages, writeApkConfig } from './apk/install.ts';
import { fetchIndexFile, loadKeys, loadRepository, locateRepository, packageFile, type LoadedKeyring, withoutEmptyLocalRepositories } from './apk/repository.ts';
import { resolve } from './apk/resolve.ts';
import { type BaseRef, describeBase, splitRepositories } from './base.ts';
import { scanBaseProvides } from './base-provides.ts';
import { type CachedRoot, digestOf, fileSha256, RootCache, treeFingerprint } from './cache.ts';
import { createDebianRoot, DEBIAN_VARIANT, type DebianLogs, installDebianPackages } from './debian.ts';
import { packageMapFor, type PackageMap } from './debian/name-map.ts';
import { assignNames, describeAssignment, readSuitePackageNames } from './debian/names.ts';
import { applyLayers, createOciRoot } from './oci.ts';
import type { EnvironmentProvider, EnvironmentSpec, PreparedRoot } from './provider.ts';
import { pullImage, resolveImage } from './registry/pull.ts';
import { hostArch } from '../pipeline/arch.ts';

/** Bumped whenever the way roots (resp. bases) are made changes, so old cache entries are not reused. */
export const ROOT_FORMAT = 2;
export const BASE_FORMAT = 2;

export function defaultRootCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'builder-roots');
}

export interface RootProviderOptions {
  /** Where roots are cached (default: defaultRootCacheDir()). */
  cacheDir?: string;
  /** Where downloaded packages and indexes are kept (`--apk-cache-dir`; default: <cacheDir>/downloads). */
  apkCacheDir?: string;
  /** `--package-map FILE`: Wolfi/Alpine names → Debian packages, over the built-in map. */
  packageMap?: string;
  /** `--debug`: mmdebstrap's and apt's own output to the terminal log too, not only the build log. */
  debug?: boolean;
  signal?: AbortSignal;
}

/** Timing-free evidence of what prepare() did, for logs and tests. */
export interface ProviderStats {
  /** Requests answered from the cache without resolving. */
  requestHits: number;
  /** Requests resolved against repository indexes. */
  resolutions: number;
  /** Packages extracted into new roots. */
  packagesInstalled: number;
  /** Debian layers made over cached bases, and the .debs downloaded for bases and layers. */
  layers: number;
  debsDownloaded: number;
}

export class RootProvider implements EnvironmentProvider {
  readonly name = 'root';
  readonly cache: RootCache;
  readonly apkCacheDir: string;
  readonly stats: ProviderStats = { requestHits: 0, resolutions: 0, packagesInstalled: 0, layers: 0, debsDownloaded: 0 };
  /** The one download cache of .debs, shared by every Debian base and layer. */
  readonly debCacheDir: string;
  private readonly signal: AbortSignal | undefined;
  private readonly packageMapFile: string | undefined;
  private readonly debug: boolean;

  constructor(options: RootProviderOptions = {}) {
    this.cache = new RootCache(options.cacheDir ?? defaultRootCacheDir());
    this.apkCacheDir = options.apkCacheDir ?? join(this.cache.dir, 'downloads');
    this.debCacheDir = join(this.apkCacheDir, 'debs');
    this.signal = options.signal;
    this.packageMapFile = options.packageMap;
    this.debug = options.debug ?? false;
  }

  async prepare(spec: EnvironmentSpec, log: (line: string) => void, chatter?: (line: string) => void, stop?: AbortSignal): Promise<PreparedRoot> {
    const signal = stop && this.signal ? AbortSignal.any([stop, this.signal]) : (stop ?? this.signal);
    const logs: DebianLogs = { log, chatter: this.debug ? log : (chatter ?? (() => undefined)) };
    const baseDir = spec.baseDir ?? process.cwd();
    const { base, repositories } = splitRepositories(spec.repositories, spec.base, baseDir);
    if (base.kind === 'host') throw new BuilderError('the host base is not a root: use the host environment provider');
    const accounts = resolveAccounts(spec.accounts);
    const arch = spec.arch || hostArch();
    const packages = [...new Set(spec.packages.map((p) => p.trim()).filter((p) => p !== ''))];
    const ignoreSignatures = spec.ignoreSignatures ?? false;
    const fromRepositories = [...new Set(spec.fromRepositories ?? [])].sort();
    const runScriptlets = spec.runScriptlets ?? false;
    if (ignoreSignatures) log('environment: --ignore-signatures: indexes and packages are NOT verified');

    // What was asked, and the exact indexes it would be resolved against: cheap to compute on every build.
    const keys: LoadedKeyring = await loadKeys(spec.keyring, baseDir, this.apkCacheDir);
    const locations = await withoutEmptyLocalRepositories(repositories.map((r) => locateRepository(r, arch, baseDir)), log);
    const indexFiles = await Promise.all(locations.map((l) => fetchIndexFile(l, this.apkCacheDir)));
    const indexDigests = await Promise.all(indexFiles.map((f) => fileSha256(f)));
    const baseRequest = await baseRequestIdentity(base, arch, this.signal);
    // The map decides what a Debian base installs, so it is part of what was asked.
    const packageMap: PackageMap | undefined = base.kind === 'debian' ? await packageMapFor(this.packageMapFile) : undefined;
    const common = {
      format: ROOT_FORMAT,
      arch,
      accounts: { users: accounts.users, groups: accounts.groups },
      keys: keys.fingerprints,
      repositories: repositories,
      ignoreSignatures,
      runScriptlets,
    };
    const requestDigest = digestOf({
      ...common,
      base: baseRequest,
      indexes: locations.map((l, i) => ({ at: l.base, sha256: indexDigests[i] })),
      packages: [...packages].sort(),
      ...(fromRepositories.length > 0 ? { fromRepositories } : {}),
      packageMap: packageMap?.digest,
    });
    const known = await this.cache.lookupRequest(requestDigest);
    if (known) {
      this.stats.requestHits++;
      this.cache.stats.hits++;
      log(`environment: cache hit ${known.digest.slice(0, 12)} (${known.meta.description}): no resolution, download or extraction`);
      return prepared(known, accounts);
    }

    let baseRoot = await this.obtainBase(base, baseRequest, arch, logs, signal);
    let baseProvides = baseRoot ? await scanBaseProvides(baseRoot.rootfs) : new Map<string, string | undefined>();
    const loaded = await Promise.all(
      locations.map((location) => loadRepository(location, { keyring: keys.keyring, ignoreSignatures, cacheDir: this.apkCacheDir })),
    );
    this.stats.resolutions++;
    let world = packages;
    if (base.kind === 'debian' && baseRoot && packageMap) {
      const apkNames = new Set<string>();
      for (const r of loaded) {
        for (const e of r.index.entries) {
          if (e.arch !== arch && e.arch !== 'noarch') continue;
          apkNames.add(e.pkgname);
          for (const p of e.provides) apkNames.add(p.split('=')[0]!);
        }
      }
      const suiteNames = await readSuitePackageNames(baseRoot.rootfs);
      const assignment = assignNames({
        world: packages,
        ...(spec.origins ? { origins: spec.origins } : {}),
        ...(spec.purpose ? { purpose: spec.purpose } : {}),
        apkHas: (n) => apkNames.has(n),
        base: baseProvides,
        map: packageMap,
        suite: base.suite,
        ...(suiteNames ? { suiteNames } : {}),
      });
      for (const line of [...describeAssignment(assignment), ...assignment.warnings]) log(line);
      if (assignment.install.length > 0) {
        baseRoot = await this.obtainLayer(baseRoot, base, assignment.install, logs, signal);
        baseProvides = await scanBaseProvides(baseRoot.rootfs);
      }
      world = assignment.apk;
    }
    const resolution = resolve({
      world,
      repositories: loaded.map((r) => ({ label: r.location.label, packages: r.index.entries })),
      arch,
      base: baseProvides,
      fromRepositories: new Set(fromRepositories),
      ...(spec.origins ? { origins: spec.origins } : {}),
      ...(spec.purpose ? { purpose: spec.purpose } : {}),
    });
    log(
      `environment: resolved ${resolution.install.length} apk package(s)` +
        (resolution.fromBase.length > 0 ? `; from the base: ${resolution.fromBase.join(' ')}` : ''),
    );
    const byRepository = new Map<string, string[]>();
    for (const r of resolution.install) byRepository.set(r.repository, [...(byRepository.get(r.repository) ?? []), `${r.pkg.pkgname}-${r.pkg.pkgver}`]);
    for (const [repository, names] of byRepository) log(`environment: from ${repository}: ${names.join(' ')}`);
    const installList = resolution.install.map((r) => ({
      entry: r.pkg,
      location: loaded.find((l) => l.location.label === r.repository)!.location,
    }));
    const contentDigest = digestOf({
      ...common,
      kind: 'root',
      base: baseRoot?.digest ?? null,
      packages: installList.map((p) => ({ name: p.entry.pkgname, version: p.entry.pkgver, checksum: p.entry.checksum })),
    });
    const names = installList.map((p) => `${p.entry.pkgname}-${p.entry.pkgver}`);
    const description =
      (baseRoot ? baseRoot.meta.description : 'no base') +
      (names.length > 0 ? ` + ${names.length} apk: ${names.slice(0, 6).join(' ')}${names.length > 6 ? ' …' : ''}` : '');

    const { root, created } = await this.cache.obtain(
      contentDigest,
      async (rootfs) => {
        log(`environment: making root ${contentDigest.slice(0, 12)} (${description})`);
        // Hard links are safe while nothing writes into existing inodes (extraction and our own writers replace
        // files); scriptlets may edit files in place, so they get a real copy.
        if (baseRoot) await copyTree(baseRoot.rootfs, rootfs, runScriptlets ? 'copy' : 'hardlink');
        if (installList.length > 0) {
          const files = [];
          for (const p of installList) {
            files.push({ entry: p.entry, file: await packageFile(p.location, p.entry, this.apkCacheDir), repository: p.location.label });
          }
          const result = await installPackages({ root: rootfs, packages: files, keyring: keys.keyring, ignoreSignatures, runScriptlets, log });
          this.stats.packagesInstalled += result.packages;
          log(`environment: installed ${result.packages} package(s), ${result.entries} entries, ${result.bytes} bytes`);
          await writeApkConfig(rootfs, { world: packages, repositories: locations.map((l) => l.spec), keyring: keys.keyring, arch });
        }
        await writeRootFiles(rootfs, accounts);
        return {
          kind: 'root',
          description,
          inputs: { base: baseRoot ? { ref: describeBase(base), digest: baseRoot.digest } : null, packages: names, accounts: common.accounts },
        };
      },
      { log, signal },
    );
    await this.cache.recordRequest(requestDigest, root.digest);
    if (!created) log(`environment: cache hit ${root.digest.slice(0, 12)} (${root.meta.description}) after resolution`);
    return prepared(root, accounts);
  }

  /**
   * A cached Debian base plus `install`: a full copy of the base (apt and dpkg write files in place, so hard
   * links would leak into the base) with apt run inside it. Named by the base's digest and the sorted
   * package set, so requests needing the same Debian packages share it.
   */
  private async obtainLayer(baseRoot: CachedRoot, base: BaseRef & { kind: 'debian' }, install: string[], logs: DebianLogs, signal: AbortSignal | undefined): Promise<CachedRoot> {
    const digest = digestOf({ format: BASE_FORMAT, kind: 'layer', base: baseRoot.digest, packages: install });
    const short = baseRoot.digest.slice(0, 12);
    const { root, created } = await this.cache.obtain(
      digest,
      async (rootfs) => {
        logs.log(`environment: layering ${install.length} Debian package(s) on base ${short}: ${install.join(' ')}`);
        await copyTree(baseRoot.rootfs, rootfs, 'copy');
        const before = await installedDebianCount(rootfs);
        this.stats.debsDownloaded += await installDebianPackages(rootfs, install, base.mirror, this.debCacheDir, logs, signal);
        const installed = (await installedDebianCount(rootfs)) - before;
        this.stats.layers++;
        logs.log(`environment: layered on base ${short}: installed ${installed} packages`);
        return {
          kind: 'base',
          description: `${baseRoot.meta.description} + deb ${install.slice(0, 6).join(',')}${install.length > 6 ? ',…' : ''}`,
          inputs: { base: baseRoot.digest, packages: install },
        };
      },
      { log: logs.log, signal },
    );
    if (!created) logs.log(`environment: layer ${root.digest.slice(0, 12)} on base ${short} from the cache`);
    return root;
  }

  private async obtainBase(base: BaseRef, request: unknown, arch: string, logs: DebianLogs, signal: AbortSignal | undefined): Promise<CachedRoot | undefined> {
    const log = logs.log;
    if (base.kind === 'none' || base.kind === 'host') return undefined;
    let identity: unknown = request;
    if (base.kind === 'oci') identity = { kind: 'oci', sha256: await fileSha256(base.path) };
    const digest = digestOf({ format: BASE_FORMAT, kind: 'base', arch, base: identity });
    const { root } = await this.cache.obtain(
      digest,
      async (rootfs) => {
        switch (base.kind) {
          case 'debian':
            this.stats.debsDownloaded += await createDebianRoot(base, arch, rootfs, this.debCacheDir, logs, signal);
            break;
          case 'dir':
            log(`environment: copying ${base.path}`);
            await copyTree(base.path, rootfs, 'copy');
            break;
          case 'oci':
            await createOciRoot(base.path, arch, rootfs, join(this.cache.dir, 'tmp'), log);
            break;
          case 'oci-registry': {
            const image = await pullImage(base.ref, arch, { blobDir: join(this.cache.dir, 'blobs'), log, ...(this.signal ? { signal: this.signal } : {}) });
            await applyLayers(rootfs, image.layers, `oci:${base.ref.text}`, log);
            break;
          }
        }
        return { kind: 'base', description: describeBase(base), inputs: identity };
      },
      { log, signal },
    );
    return root;
  }
}


/** What identifies a base request, computed without making the base. */
async function baseRequestIdentity(base: BaseRef, arch: string, signal: AbortSignal | undefined): Promise<unknown> {
  switch (base.kind) {
    case 'none':
    case 'host':
      return { kind: base.kind };
    case 'debian':
      return { kind: 'debian', suite: base.suite, packages: base.packages, mirror: base.mirror, variant: DEBIAN_VARIANT };
    case 'dir': {
      const st = await stat(base.path).catch(() => undefined);
      if (!st?.isDirectory()) throw new BuilderError(`dir:${base.path}: not a directory`);
      return { kind: 'dir', path: base.path, fingerprint: await treeFingerprint(base.path) };
    }
    case 'oci': {
      const st = await stat(base.path).catch(() => undefined);
      if (!st?.isFile()) throw new BuilderError(`oci:${base.path}: no such image tarball`);
      return { kind: 'oci', path: base.path, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
    }
    case 'oci-registry':
      // A tag may move: it is resolved to the platform manifest's digest on every build (one small request).
      return { kind: 'oci-registry', manifest: (await resolveImage(base.ref, arch, signal ? { signal } : {})).manifestDigest };
  }
}

/** Installed Debian packages in a root (dpkg's status). */
async function installedDebianCount(rootfs: string): Promise<number> {
  const text = await readFile(join(rootfs, 'var/lib/dpkg/status'), 'utf8').catch(() => '');
  return (text.match(/^Status: install ok installed$/gm) ?? []).length;
}

/** Copies a tree into an existing empty directory, as hard links or as a full copy (reflinks when possible). */
export async function copyTree(source: string, dest: string, mode: 'hardlink' | 'copy'): Promise<void> {
  const args = mode === 'hardlink' ? ['-a', '-l', '--no-target-directory'] : ['-a', '--reflink=auto', '--no-target-directory'];
  const result = await execa('cp', [...args, `${source}/.`, dest], { reject: false, all: true });
  if (result.exitCode !== 0) {
    throw new BuilderError(`cannot copy ${source} into a new root: ${String(result.all ?? '').split('\n').slice(0, 5).join('; ')}`);
  }
}

function prepared(root: CachedRoot, accounts: Accounts): PreparedRoot {
  return {
    description: `root ${root.digest.slice(0, 12)} (${root.meta.description})`,
    mounts: [{ source: root.rootfs, target: '/', readonly: true }],
    directory: root.rootfs,
    digest: root.digest,
    runAs: accounts.runAs,
    // The root belongs to the cache and is shared between builds: nothing to undo.
    release: async () => undefined,
  };
}
