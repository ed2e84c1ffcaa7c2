// The SBOM each package carries: an SPDX 2.3 JSON document at
// `var/lib/db/sbom/<name>-<version>-r<epoch>.spdx.json` describing the package (purl
// `pkg:apk/<namespace>/<name>@<version>-r<epoch>?arch=<arch>`), where it was built from (downloaded archives
// with their checksums, git repositories at a commit), its declared licenses and, as melange records it, the
// recipe file itself (a package DESCRIBED_BY relationship: path, commit, --git-repo-url, --license). Everything in it is derived
// from the inputs, the creation time being SOURCE_DATE_EPOCH, so the same build writes the same bytes.
import { createHash } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { writeBufferAtomic } from '../apk/atomic.ts';
import { VERSION } from '../version.ts';
import { checkLicenseExpression } from './license.ts';

export type SbomSource =
  | { uri: string; sha256?: string; sha512?: string }
  | { repository: string; commit: string };

/** The recipe file the package was built from, as melange describes its build configuration. */
export interface SbomConfigFile {
  /** The recipe's path as named in the build (melange: the path given on its command line). */
  path: string;
  /** `--git-repo-url`: where the recipe lives. */
  repositoryUrl?: string;
  /** The recipe's git commit (`--git-commit`, else detected). */
  commit?: string;
  /** `--license`: the recipe file's own license; default NOASSERTION. */
  license?: string;
}

export interface SbomInput {
  name: string;
  /** Upstream version, without `-r<epoch>`. */
  version: string;
  epoch: number;
  arch: string;
  /** Distribution namespace for the purl and supplier, e.g. `wolfi`. */
  namespace: string;
  /** License expressions, one per `copyright` entry of the recipe. */
  licenses: string[];
  sources: SbomSource[];
  sourceDateEpoch: number;
  description?: string;
  url?: string;
  /** The recipe file, added as the build configuration package. */
  configFile?: SbomConfigFile;
  /** Defaults to this builder's version. */
  toolVersion?: string;
}

export interface SpdxChecksum {
  algorithm: 'SHA256' | 'SHA512';
  checksumValue: string;
}

export interface SpdxExternalRef {
  referenceCategory: 'PACKAGE-MANAGER';
  referenceType: 'purl';
  referenceLocator: string;
}

export interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  downloadLocation: string;
  filesAnalyzed: false;
  licenseConcluded: string;
  licenseDeclared: string;
  copyrightText: string;
  supplier?: string;
  originator?: string;
  homepage?: string;
  description?: string;
  primaryPackagePurpose?: 'APPLICATION' | 'SOURCE';
  checksums?: SpdxChecksum[];
  externalRefs: SpdxExternalRef[];
}

export interface SpdxRelationship {
  spdxElementId: string;
  relationshipType: 'DESCRIBES' | 'GENERATED_FROM' | 'DESCRIBED_BY';
  relatedSpdxElement: string;
}

export interface SpdxDocument {
  spdxVersion: 'SPDX-2.3';
  dataLicense: 'CC0-1.0';
  SPDXID: 'SPDXRef-DOCUMENT';
  name: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  documentDescribes: string[];
  packages: SpdxPackage[];
  relationships: SpdxRelationship[];
  hasExtractedLicensingInfos?: { licenseId: string; extractedText: string; name: string }[];
}

export interface SbomResult {
  document: SpdxDocument;
  /** The file content: the document as pretty-printed JSON with a final newline. */
  json: string;
  /** Problems that did not stop the SBOM: invalid or unknown licenses, malformed checksums. */
  warnings: string[];
}

/** Where the SBOM lives inside the package tree. */
export function sbomPath(name: string, version: string, epoch: number): string {
  return `var/lib/db/sbom/${name}-${version}-r${epoch}.spdx.json`;
}

/** Percent-encoding as the purl spec wants it for names, versions and qualifier values. */
function purlEncode(s: string): string {
  return encodeURIComponent(s);
}

export function apkPurl(namespace: string, name: string, fullVersion: string, arch: string): string {
  return `pkg:apk/${purlEncode(namespace.toLowerCase())}/${purlEncode(name)}@${purlEncode(fullVersion)}?arch=${purlEncode(arch)}`;
}

/** SPDXRef ids allow letters, digits, `.` and `-` only. */
function spdxId(prefix: string, text: string): string {
  return `${prefix}-${text.replace(/[^A-Za-z0-9.-]/g, '-')}`;
}

function isoTime(epoch: number): string {
  return new Date(epoch * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const NOASSERTION = 'NOASSERTION';

export function buildSpdxDocument(input: SbomInput): SbomResult {
  const warnings: string[] = [];
  const fullVersion = `${input.version}-r${input.epoch}`;
  const pkgId = spdxId('SPDXRef-Package', `${input.name}-${fullVersion}`);
  const extracted: Extracted = [];

  const declared = declaredLicense(input.licenses, warnings, extracted);

  const supplier = `Organization: ${input.namespace}`;
  const main: SpdxPackage = {
    SPDXID: pkgId,
    name: input.name,
    versionInfo: fullVersion,
    downloadLocation: NOASSERTION,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared: declared,
    copyrightText: NOASSERTION,
    supplier,
    originator: supplier,
    primaryPackagePurpose: 'APPLICATION',
    externalRefs: [
      { referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: apkPurl(input.namespace, input.name, fullVersion, input.arch) },
    ],
  };
  if (input.url) main.homepage = input.url;
  if (input.description) main.description = input.description;

  const packages: SpdxPackage[] = [main];
  const relationships: SpdxRelationship[] = [{ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: pkgId }];
  if (input.configFile) {
    const config = configFilePackage(input.configFile, supplier, declaredLicense([input.configFile.license ?? NOASSERTION], warnings, extracted));
    packages.push(config);
    relationships.push({ spdxElementId: pkgId, relationshipType: 'DESCRIBED_BY', relatedSpdxElement: config.SPDXID });
  }
  input.sources.forEach((source, i) => {
    const pkg = 'repository' in source ? gitSource(source, i, warnings) : fetchSource(source, i, input.version, warnings);
    packages.push(pkg);
    relationships.push({ spdxElementId: pkgId, relationshipType: 'GENERATED_FROM', relatedSpdxElement: pkg.SPDXID });
  });

  const toolVersion = input.toolVersion ?? VERSION;
  // Unique per package build and still reproducible: derived from what the document says.
  const identity = createHash('sha256')
    .update(JSON.stringify([input.namespace, input.name, fullVersion, input.arch, declared, packages, input.sourceDateEpoch, toolVersion]))
    .digest('hex');
  const document: SpdxDocument = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `apk-${input.name}-${fullVersion}`,
    documentNamespace: `https://spdx.org/spdxdocs/builder/${encodeURIComponent(input.namespace)}/${encodeURIComponent(input.name)}-${encodeURIComponent(fullVersion)}-${identity.slice(0, 32)}`,
    creationInfo: { created: isoTime(input.sourceDateEpoch), creators: [`Tool: builder-${toolVersion}`, supplier] },
    documentDescribes: [pkgId],
    packages,
    relationships,
  };
  if (extracted.length > 0) document.hasExtractedLicensingInfos = extracted;
  return { document, json: `${JSON.stringify(document, null, 2)}\n`, warnings };
}

type Extracted = { licenseId: string; extractedText: string; name: string }[];

/** One SPDX expression for a list of license texts; texts that are not expressions become LicenseRefs. */
function declaredLicense(licenses: string[], warnings: string[], extracted: Extracted): string {
  const parts: { text: string; compound: boolean }[] = [];
  for (const license of licenses) {
    const check = checkLicenseExpression(license);
    if (check.valid) {
      for (const id of check.unknown) warnings.push(`license "${license}": "${id}" is not a known SPDX identifier`);
      if (check.normalized !== NOASSERTION) parts.push({ text: check.normalized, compound: check.compound });
      continue;
    }
    // Not an expression: keep the text, as SPDX does for licenses it has no identifier for.
    const id = `LicenseRef-${createHash('sha256').update(license).digest('hex').slice(0, 12)}`;
    warnings.push(`license "${license}" is not a valid SPDX license expression (${check.error}); recorded as ${id}`);
    if (!extracted.some((e) => e.licenseId === id)) extracted.push({ licenseId: id, extractedText: license, name: license });
    parts.push({ text: id, compound: false });
  }
  return parts.length === 0 ? NOASSERTION : parts.length === 1 ? (parts[0]?.text ?? NOASSERTION) : parts.map((p) => (p.compound ? `(${p.text})` : p.text)).join(' AND ');
}

const GITHUB = /^https?:\/\/github\.com\/([^/]+)\/([^/]+?)(\.git)?\/*$/;

function githubPurl(owner: string, repo: string, commit: string | undefined, subpath?: string): string {
  const version = commit ? `@${purlEncode(commit)}` : '';
  const sub = subpath ? `#${subpath.split('/').filter((p) => p !== '' && p !== '.' && p !== '..').map(purlEncode).join('/')}` : '';
  return `pkg:github/${purlEncode(owner.toLowerCase())}/${purlEncode(repo.toLowerCase())}${version}${sub}`;
}

/**
 * The recipe as melange describes it (pkg/build/sbom/spdx: AddBuildConfigurationPackage): named by its path,
 * versioned by its commit, licensed by --license, with a pkg:github purl (subpath: the recipe) for a GitHub
 * repository. builder also sets its download location to --git-repo-url, and gives other repositories a
 * pkg:generic purl with a vcs_url instead of failing as melange does.
 */
function configFilePackage(config: SbomConfigFile, supplier: string, license: string): SpdxPackage {
  const repo = config.repositoryUrl?.replace(/\/+$/, '');
  const pkg: SpdxPackage = {
    SPDXID: spdxId('SPDXRef-Package', config.path),
    name: config.path,
    downloadLocation: repo ?? NOASSERTION,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared: license,
    copyrightText: NOASSERTION,
    supplier,
    originator: supplier,
    externalRefs: [],
  };
  if (config.commit) pkg.versionInfo = config.commit;
  const github = repo ? GITHUB.exec(repo) : null;
  if (github) {
    pkg.externalRefs.push({ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: githubPurl(github[1] ?? '', github[2] ?? '', config.commit, config.path) });
  } else if (repo) {
    const vcs = `git+${repo}${config.commit ? `@${config.commit}` : ''}`;
    const name = posix.basename(repo).replace(/\.git$/, '') || 'recipe';
    const locator = `pkg:generic/${purlEncode(name)}${config.commit ? `@${purlEncode(config.commit)}` : ''}?vcs_url=${purlEncode(vcs)}#${config.path.split('/').map(purlEncode).join('/')}`;
    pkg.externalRefs.push({ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: locator });
  }
  return pkg;
}

function fetchSource(source: { uri: string; sha256?: string; sha512?: string }, i: number, version: string, warnings: string[]): SpdxPackage {
  let name = `source-${i + 1}`;
  try {
    const base = posix.basename(new URL(source.uri).pathname);
    if (base !== '') name = base;
  } catch {
    warnings.push(`source "${source.uri}" is not a URL`);
  }
  const checksums: SpdxChecksum[] = [];
  const qualifiers: string[] = [];
  for (const [algorithm, value, length] of [
    ['SHA256', source.sha256, 64],
    ['SHA512', source.sha512, 128],
  ] as const) {
    if (value === undefined) continue;
    const hex = value.toLowerCase();
    if (hex.length !== length || !/^[0-9a-f]+$/.test(hex)) {
      warnings.push(`source "${source.uri}": ${algorithm} checksum "${value}" is not ${length} hex digits; left out`);
      continue;
    }
    checksums.push({ algorithm, checksumValue: hex });
    qualifiers.push(`checksum=${algorithm.toLowerCase()}:${hex}`);
  }
  qualifiers.push(`download_url=${purlEncode(source.uri)}`);
  const pkg: SpdxPackage = {
    SPDXID: `SPDXRef-Source-${i + 1}`,
    name,
    versionInfo: version,
    downloadLocation: source.uri,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    copyrightText: NOASSERTION,
    primaryPackagePurpose: 'SOURCE',
    externalRefs: [
      { referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:generic/${purlEncode(name)}@${purlEncode(version)}?${qualifiers.join('&')}` },
    ],
  };
  if (checksums.length > 0) pkg.checksums = checksums;
  return pkg;
}

function gitSource(source: { repository: string; commit: string }, i: number, warnings: string[]): SpdxPackage {
  const repo = source.repository.replace(/\/+$/, '');
  const name = posix.basename(repo).replace(/\.git$/, '') || `source-${i + 1}`;
  if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(source.commit)) {
    warnings.push(`source "${source.repository}": commit "${source.commit}" is not a full hex commit id`);
  }
  const github = GITHUB.exec(repo);
  const purl = github
    ? githubPurl(github[1] ?? '', github[2] ?? '', source.commit)
    : `pkg:generic/${purlEncode(name)}@${purlEncode(source.commit)}?vcs_url=${purlEncode(`git+${repo}@${source.commit}`)}`;
  return {
    SPDXID: `SPDXRef-Source-${i + 1}`,
    name,
    versionInfo: source.commit,
    downloadLocation: `git+${repo}@${source.commit}`,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    copyrightText: NOASSERTION,
    primaryPackagePurpose: 'SOURCE',
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: purl }],
  };
}

/**
 * Writes the package's SBOM into its tree (before packaging), creating `var/lib/db/sbom` as needed.
 * Returns the path written (relative to the tree) and the warnings to show.
 */
export async function writeSbom(packageDir: string, input: SbomInput): Promise<{ path: string; warnings: string[] }> {
  const { json, warnings } = buildSpdxDocument(input);
  const rel = sbomPath(input.name, input.version, input.epoch);
  const relDir = posix.dirname(rel);
  const firstCreated = await mkdir(join(packageDir, relDir), { recursive: true });
  if (firstCreated !== undefined) {
    // mkdir's mode is filtered by the umask; the directories we add to the package must not depend on it.
    for (let d = relDir; join(packageDir, d).length >= firstCreated.length; d = posix.dirname(d)) {
      await chmod(join(packageDir, d), 0o755);
      if (d === '.' || posix.dirname(d) === d) break;
    }
  }
  await writeBufferAtomic(join(packageDir, rel), Buffer.from(json), { mode: 0o644, overwrite: true, sync: false });
  return { path: rel, warnings };
}
