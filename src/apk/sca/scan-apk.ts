// Scanning packages that already exist: what would the scanner generate for these .apk files, and how does
// that compare with what their `.PKGINFO` says? Packages with the same `origin` are scanned together, as
// the subpackages of one build are.
import { dependencyName } from './deps.ts';
import { mapLimit } from './limit.ts';
import { type ScanResult, scanTrees, type ScanTreeInput } from './scan.ts';
import { type ApkTree, readTreeFromApk } from './tree.ts';

export interface ApkScanReport {
  file: string;
  name: string;
  /** `<version>-r<epoch>` */
  version: string;
  /** What scanning the package's files generates. */
  scanned: ScanResult;
  /** What the package's `.PKGINFO` carries. */
  pkginfo: { depend: string[]; provides: string[] };
  /** Generated entries whose name `.PKGINFO` lacks. */
  missing: { depend: string[]; provides: string[] };
}

export async function scanApks(files: string[], options: { tempParent?: string } = {}): Promise<ApkScanReport[]> {
  const trees: ApkTree[] = [];
  try {
    // Two packages unpack at once: enough to overlap decompression with file inspection.
    const opened = await mapLimit(files, 2, (f) => readTreeFromApk(f, options).then((t) => (trees.push(t), t)));
    const groups = new Map<string, ApkTree[]>();
    for (const t of opened) {
      const origin = t.head.info.origin ?? t.head.info.pkgname;
      groups.set(origin, [...(groups.get(origin) ?? []), t]);
    }
    const results = new Map<ApkTree, ScanResult>();
    for (const group of groups.values()) {
      const inputs: ScanTreeInput[] = group.map((t) => ({
        name: t.head.info.pkgname,
        version: t.head.info.pkgver,
        tree: t,
        options: { noProvides: false, noDepends: false, noCommands: false },
        declared: { runtime: [], provides: [] },
      }));
      const scanned = await scanTrees(inputs);
      for (const t of group) {
        const r = scanned.get(t.head.info.pkgname);
        if (r) results.set(t, r);
      }
    }
    return opened.map((t, i) => {
      const scanned = results.get(t) ?? { depend: [], provides: [], warnings: [] };
      const { depend, provides } = t.head.info;
      const has = (list: string[]): Set<string> => new Set(list.map(dependencyName));
      const dependNames = has(depend);
      const provideNames = has(provides);
      return {
        file: files[i] as string,
        name: t.head.info.pkgname,
        version: t.head.info.pkgver,
        scanned,
        pkginfo: { depend: [...depend], provides: [...provides] },
        missing: {
          depend: scanned.depend.filter((d) => !dependNames.has(dependencyName(d))),
          provides: scanned.provides.filter((p) => !provideNames.has(dependencyName(p))),
        },
      };
    });
  } finally {
    await Promise.all(trees.map((t) => t.dispose()));
  }
}
