import { readFile, stat, mkdir, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLicenseExpression } from '../../src/sbom/license.ts';
import { apkPurl, buildSpdxDocument, type SbomInput, sbomPath, type SpdxDocument, writeSbom } from '../../src/sbom/spdx.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

const SHA256 = 'a'.repeat(64);
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

function input(extra: Partial<SbomInput> = {}): SbomInput {
  return {
    name: 'greet',
    version: '1.2.3',
    epoch: 4,
    arch: 'x86_64',
    namespace: 'wolfi',
    licenses: ['MIT'],
    sources: [
      { uri: 'https://example.org/dl/greet-1.2.3.tar.gz', sha256: SHA256.toUpperCase() },
      { repository: 'https://github.com/Example/Greet.git', commit: COMMIT },
      { repository: 'https://git.example.org/tools/helper', commit: COMMIT },
    ],
    sourceDateEpoch: 1_700_000_000,
    url: 'https://example.org/greet',
    description: 'greets',
    toolVersion: '0.1.0',
    ...extra,
  };
}

describe('SPDX document', () => {
  it('has the required SPDX 2.3 fields, the package purl and the sources with checksums and commits', () => {
    const { document: doc, json, warnings } = buildSpdxDocument(input());
    expect(warnings).toEqual([]);
    expect(JSON.parse(json)).toEqual(doc);
    expect(json.endsWith('}\n')).toBe(true);
    expect(doc).toMatchObject({
      spdxVersion: 'SPDX-2.3',
      dataLicense: 'CC0-1.0',
      SPDXID: 'SPDXRef-DOCUMENT',
      name: 'apk-greet-1.2.3-r4',
      creationInfo: { created: '2023-11-14T22:13:20Z', creators: ['Tool: builder-0.1.0', 'Organization: wolfi'] },
      documentDescribes: ['SPDXRef-Package-greet-1.2.3-r4'],
    });
    expect(doc.documentNamespace).toMatch(/^https:\/\/spdx\.org\/spdxdocs\/builder\/wolfi\/greet-1\.2\.3-r4-[0-9a-f]{32}$/);

    const [main, tarball, github, other] = doc.packages;
    expect(main).toMatchObject({
      SPDXID: 'SPDXRef-Package-greet-1.2.3-r4',
      name: 'greet',
      versionInfo: '1.2.3-r4',
      licenseDeclared: 'MIT',
      licenseConcluded: 'NOASSERTION',
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      homepage: 'https://example.org/greet',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: 'pkg:apk/wolfi/greet@1.2.3-r4?arch=x86_64' }],
    });
    expect(tarball).toMatchObject({
      name: 'greet-1.2.3.tar.gz',
      versionInfo: '1.2.3',
      downloadLocation: 'https://example.org/dl/greet-1.2.3.tar.gz',
      checksums: [{ algorithm: 'SHA256', checksumValue: SHA256 }],
      externalRefs: [
        {
          referenceType: 'purl',
          referenceLocator: `pkg:generic/greet-1.2.3.tar.gz@1.2.3?checksum=sha256:${SHA256}&download_url=https%3A%2F%2Fexample.org%2Fdl%2Fgreet-1.2.3.tar.gz`,
        },
      ],
    });
    expect(github).toMatchObject({
      name: 'Greet',
      versionInfo: COMMIT,
      downloadLocation: `git+https://github.com/Example/Greet.git@${COMMIT}`,
      externalRefs: [{ referenceLocator: `pkg:github/example/greet@${COMMIT}` }],
    });
    expect(other?.externalRefs[0]?.referenceLocator).toBe(
      `pkg:generic/helper@${COMMIT}?vcs_url=${encodeURIComponent(`git+https://git.example.org/tools/helper@${COMMIT}`)}`,
    );
    expect(doc.relationships).toEqual([
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: 'SPDXRef-Package-greet-1.2.3-r4' },
      ...[1, 2, 3].map((i) => ({ spdxElementId: 'SPDXRef-Package-greet-1.2.3-r4', relationshipType: 'GENERATED_FROM', relatedSpdxElement: `SPDXRef-Source-${i}` })),
    ]);
    // Every SPDXID is unique and well-formed; every relationship points at one.
    const ids = [doc.SPDXID, ...doc.packages.map((p) => p.SPDXID)];
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^SPDXRef-[A-Za-z0-9.-]+$/);
    for (const r of doc.relationships) expect(ids).toContain(r.relatedSpdxElement);
  });

  it('describes the recipe file as melange does: path, commit, --license, --git-repo-url (DESCRIBED_BY)', () => {
    const doc = buildSpdxDocument(input({ configFile: { path: 'greet.yaml', commit: COMMIT, repositoryUrl: 'https://github.com/Wolfi-Dev/os', license: 'Apache-2.0' } })).document;
    const config = doc.packages.find((p) => p.name === 'greet.yaml');
    expect(config).toEqual({
      SPDXID: 'SPDXRef-Package-greet.yaml',
      name: 'greet.yaml',
      versionInfo: COMMIT,
      downloadLocation: 'https://github.com/Wolfi-Dev/os',
      filesAnalyzed: false,
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: 'Apache-2.0',
      copyrightText: 'NOASSERTION',
      supplier: 'Organization: wolfi',
      originator: 'Organization: wolfi',
      externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: `pkg:github/wolfi-dev/os@${COMMIT}#greet.yaml` }],
    });
    expect(doc.relationships).toContainEqual({ spdxElementId: 'SPDXRef-Package-greet-1.2.3-r4', relationshipType: 'DESCRIBED_BY', relatedSpdxElement: 'SPDXRef-Package-greet.yaml' });
  });

  it('the recipe file without a repository or license: NOASSERTION, no purl; another host gets a generic purl', () => {
    const bare = buildSpdxDocument(input({ configFile: { path: 'greet.yaml' } })).document.packages.find((p) => p.name === 'greet.yaml');
    expect(bare).toMatchObject({ downloadLocation: 'NOASSERTION', licenseDeclared: 'NOASSERTION', externalRefs: [] });
    expect(bare?.versionInfo).toBeUndefined();
    const other = buildSpdxDocument(input({ configFile: { path: 'greet.yaml', commit: COMMIT, repositoryUrl: 'https://git.example.org/os.git' } }));
    expect(other.document.packages.find((p) => p.name === 'greet.yaml')?.externalRefs[0]?.referenceLocator).toBe(
      `pkg:generic/os@${COMMIT}?vcs_url=${encodeURIComponent(`git+https://git.example.org/os.git@${COMMIT}`)}#greet.yaml`,
    );
    const bad = buildSpdxDocument(input({ configFile: { path: 'greet.yaml', license: 'not a license!' } }));
    expect(bad.warnings.join('\n')).toMatch(/license "not a license!" is not a valid SPDX license expression/);
  });

  it('is reproducible: same input, same bytes; a different input, a different namespace', () => {
    expect(buildSpdxDocument(input()).json).toBe(buildSpdxDocument(input()).json);
    const a = buildSpdxDocument(input()).document.documentNamespace;
    const b = buildSpdxDocument(input({ epoch: 5 })).document.documentNamespace;
    const c = buildSpdxDocument(input({ arch: 'aarch64' })).document.documentNamespace;
    expect(new Set([a, b, c]).size).toBe(3);
  });

  it('combines several copyright licenses with AND, parenthesising compound ones', () => {
    const { document, warnings } = buildSpdxDocument(input({ licenses: ['mit', 'Apache-2.0 or GPL-2.0-or-later', 'BSD-3-Clause'] }));
    expect(warnings).toEqual([]);
    expect(document.packages[0]?.licenseDeclared).toBe('MIT AND (Apache-2.0 OR GPL-2.0-or-later) AND BSD-3-Clause');
    expect(buildSpdxDocument(input({ licenses: [] })).document.packages[0]?.licenseDeclared).toBe('NOASSERTION');
  });

  it('an invalid license expression is a warning and recorded as extracted licensing info', () => {
    const { document, warnings } = buildSpdxDocument(input({ licenses: ['GPL v2 or later', 'MIT'] }));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^license "GPL v2 or later" is not a valid SPDX license expression \(.*\); recorded as LicenseRef-[0-9a-f]{12}$/);
    const ref = /LicenseRef-[0-9a-f]{12}/.exec(warnings[0] ?? '')?.[0];
    expect(document.packages[0]?.licenseDeclared).toBe(`${ref} AND MIT`);
    expect(document.hasExtractedLicensingInfos).toEqual([{ licenseId: ref, extractedText: 'GPL v2 or later', name: 'GPL v2 or later' }]);
  });

  it('an unknown license identifier is kept with a warning', () => {
    const { document, warnings } = buildSpdxDocument(input({ licenses: ['Foo-License-1.0 OR MIT'] }));
    expect(warnings).toEqual(['license "Foo-License-1.0 OR MIT": "Foo-License-1.0" is not a known SPDX identifier']);
    expect(document.packages[0]?.licenseDeclared).toBe('Foo-License-1.0 OR MIT');
    expect(document.hasExtractedLicensingInfos).toBeUndefined();
  });

  it('malformed checksums and commits are warnings; the checksum is left out', () => {
    const { document, warnings } = buildSpdxDocument(
      input({ sources: [{ uri: 'https://example.org/x.tar.gz', sha256: 'abc' }, { repository: 'https://example.org/r.git', commit: 'main' }] }),
    );
    expect(warnings).toEqual([
      'source "https://example.org/x.tar.gz": SHA256 checksum "abc" is not 64 hex digits; left out',
      'source "https://example.org/r.git": commit "main" is not a full hex commit id',
    ]);
    expect(document.packages[1]?.checksums).toBeUndefined();
  });

  it('purls percent-encode what needs it', () => {
    expect(apkPurl('Wolfi', 'libstdc++', '13.2.0_p1-r0', 'x86_64')).toBe('pkg:apk/wolfi/libstdc%2B%2B@13.2.0_p1-r0?arch=x86_64');
  });
});

describe('writeSbom', () => {
  it('writes the document into the package tree at var/lib/db/sbom/<name>-<ver>-r<N>.spdx.json', async () => {
    const dir = await tempDir();
    const prev = process.umask(0o077);
    let result;
    try {
      result = await writeSbom(dir, input());
    } finally {
      process.umask(prev);
    }
    expect(result.path).toBe('var/lib/db/sbom/greet-1.2.3-r4.spdx.json');
    expect(sbomPath('greet', '1.2.3', 4)).toBe(result.path);
    const doc = JSON.parse(await readFile(join(dir, result.path), 'utf8')) as SpdxDocument;
    expect(doc.name).toBe('apk-greet-1.2.3-r4');
    expect((await stat(join(dir, result.path))).mode & 0o777).toBe(0o644);
    for (const d of ['var', 'var/lib', 'var/lib/db', 'var/lib/db/sbom']) expect((await stat(join(dir, d))).mode & 0o777).toBe(0o755);
  });

  it('leaves the modes of directories that already existed alone', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'var/lib'), { recursive: true });
    await chmod(join(dir, 'var/lib'), 0o750);
    await writeSbom(dir, input());
    expect((await stat(join(dir, 'var/lib'))).mode & 0o777).toBe(0o750);
    expect((await stat(join(dir, 'var/lib/db'))).mode & 0o777).toBe(0o755);
  });
});

describe('license expressions', () => {
  it.each([
    ['MIT', 'MIT'],
    ['mit or apache-2.0', 'MIT OR Apache-2.0'],
    ['GPL-2.0-or-later WITH Classpath-exception-2.0', 'GPL-2.0-or-later WITH Classpath-exception-2.0'],
    ['(MIT AND BSD-3-Clause) OR GPL-2.0+', '(MIT AND BSD-3-Clause) OR GPL-2.0+'],
    ['LicenseRef-custom', 'LicenseRef-custom'],
    ['DocumentRef-ext:LicenseRef-x', 'DocumentRef-ext:LicenseRef-x'],
    ['NOASSERTION', 'NOASSERTION'],
  ])('%s is valid', (text, normalized) => {
    expect(checkLicenseExpression(text)).toMatchObject({ valid: true, normalized, unknown: [] });
  });

  it.each(['', 'MIT AND', 'MIT OR OR Apache-2.0', '(MIT', 'MIT)', 'GPL-2.0 WITH', 'GPL v2', 'MIT,Apache-2.0', 'MIT And ISC'])(
    '"%s" is invalid',
    (text) => {
      expect(checkLicenseExpression(text).valid).toBe(false);
    },
  );
});
