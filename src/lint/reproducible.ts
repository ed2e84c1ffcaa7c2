// Reproducibility checking (`build --verify-reproducible`): two builds of the same recipe must give
// byte-identical packages. When they do not, say which files differ and how, the data entries first
// (they are the cause; `.PKGINFO`'s datahash and size only follow from them).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BuilderError } from '../errors.ts';
import { type ApkDataEntry, type ApkHead, readApkData, readApkHead } from '../apk/reader.ts';

export interface ApkDifference {
  /** A data path, `.PKGINFO`, or a control file name. */
  path: string;
  /** What differs, e.g. `content (sha1 0a1b… vs 9f8e…)`, `mode 0644 vs 0755`, `only in the first package`. */
  what: string;
}

export interface ApkComparison {
  identical: boolean;
  /** The first differences (data entries in path order, then control data), at most `limit`. */
  differences: ApkDifference[];
  /** How many differences there are in all. */
  total: number;
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

function short(hash: string | undefined): string {
  return hash === undefined ? 'none' : hash.slice(0, 12);
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

async function dataEntries(path: string, head: ApkHead): Promise<Map<string, ApkDataEntry>> {
  const entries = new Map<string, ApkDataEntry>();
  await readApkData(path, head, { onEntryRead: (e) => void entries.set(e.name, e) });
  return entries;
}

function entryDifferences(path: string, a: ApkDataEntry, b: ApkDataEntry): ApkDifference[] {
  const out: ApkDifference[] = [];
  if (a.type !== b.type) return [{ path, what: `type ${a.type} vs ${b.type}` }];
  if (a.contentSha1 !== b.contentSha1) {
    out.push({ path, what: a.type === 'symlink' ? `link target ${a.linkname ?? ''} vs ${b.linkname ?? ''}` : `content (sha1 ${short(a.contentSha1)} vs ${short(b.contentSha1)}, ${a.size} vs ${b.size} bytes)` });
  }
  if (a.type === 'hardlink' && a.linkname !== b.linkname) out.push({ path, what: `hard link to ${a.linkname ?? ''} vs ${b.linkname ?? ''}` });
  if (a.mode !== b.mode) out.push({ path, what: `mode ${octal(a.mode)} vs ${octal(b.mode)}` });
  if (a.uid !== b.uid || a.gid !== b.gid) out.push({ path, what: `owner ${a.uid}:${a.gid} vs ${b.uid}:${b.gid}` });
  if (a.mtime !== b.mtime) out.push({ path, what: `mtime ${a.mtime} vs ${b.mtime}` });
  return out;
}

function lineDifferences(path: string, a: string, b: string): ApkDifference[] {
  const la = a.split('\n');
  const lb = b.split('\n');
  const out: ApkDifference[] = [];
  const setB = new Set(lb);
  const setA = new Set(la);
  for (const l of la) if (!setB.has(l) && l !== '') out.push({ path, what: `"${l}" only in the first package` });
  for (const l of lb) if (!setA.has(l) && l !== '') out.push({ path, what: `"${l}" only in the second package` });
  if (out.length === 0 && a !== b) out.push({ path, what: 'line order differs' });
  return out;
}

/** Compares two .apk files: identical bytes, or the differences that explain why not. */
export async function compareApks(a: string, b: string, options: { limit?: number } = {}): Promise<ApkComparison> {
  const limit = options.limit ?? 20;
  const [ha, hb] = await Promise.all([fileSha256(a), fileSha256(b)]);
  if (ha === hb) return { identical: true, differences: [], total: 0 };

  const [headA, headB] = await Promise.all([readApkHead(a), readApkHead(b)]);
  const [dataA, dataB] = await Promise.all([dataEntries(a, headA), dataEntries(b, headB)]);
  const differences: ApkDifference[] = [];
  const paths = [...new Set([...dataA.keys(), ...dataB.keys()])].sort();
  for (const path of paths) {
    const ea = dataA.get(path);
    const eb = dataB.get(path);
    if (!eb) differences.push({ path, what: 'only in the first package' });
    else if (!ea) differences.push({ path, what: 'only in the second package' });
    else differences.push(...entryDifferences(path, ea, eb));
  }
  if (differences.length === 0 && [...dataA.keys()].join('\n') !== [...dataB.keys()].join('\n')) {
    differences.push({ path: '(data)', what: 'entries are in a different order' });
  }
  differences.push(...lineDifferences('.PKGINFO', headA.pkginfo, headB.pkginfo));
  const controlNames = [...new Set([...headA.controlFiles, ...headB.controlFiles].map((f) => f.name))].sort();
  for (const name of controlNames) {
    const ca = headA.controlFiles.find((f) => f.name === name);
    const cb = headB.controlFiles.find((f) => f.name === name);
    if (!cb) differences.push({ path: name, what: 'only in the first package' });
    else if (!ca) differences.push({ path: name, what: 'only in the second package' });
    else {
      if (!ca.content.equals(cb.content)) differences.push({ path: name, what: 'content differs' });
      if (ca.mode !== cb.mode) differences.push({ path: name, what: `mode ${octal(ca.mode)} vs ${octal(cb.mode)}` });
    }
  }
  if (differences.length === 0) {
    // Same entries, same metadata: what is left is the compression or the signature.
    differences.push({ path: '(archive)', what: headA.controlCompressed.equals(headB.controlCompressed) ? 'signature or data compression differs' : 'control stream compression differs' });
  }
  return { identical: false, differences: differences.slice(0, limit), total: differences.length };
}

/** Two builds of one package differ: the message names the package, the details the differing files. */
export class NotReproducibleError extends BuilderError {
  override name = 'NotReproducibleError';
  readonly comparisons: { packageName: string; comparison: ApkComparison }[];
  constructor(comparisons: { packageName: string; first: string; second: string; comparison: ApkComparison }[]) {
    const differing = comparisons.filter((c) => !c.comparison.identical);
    const firstPaths = (c: ApkComparison): string => [...new Set(c.differences.map((d) => d.path))].slice(0, 3).join(', ');
    super(
      `not reproducible: ${differing.map((c) => `${c.packageName} (${firstPaths(c.comparison)})`).join('; ')}`,
      {
        details: differing.flatMap((c) => [
          `${basename(c.first)} vs ${c.second}:`,
          ...c.comparison.differences.map((d) => `  ${d.path}: ${d.what}`),
          ...(c.comparison.total > c.comparison.differences.length ? [`  ... and ${c.comparison.total - c.comparison.differences.length} more`] : []),
        ]),
      },
    );
    this.comparisons = differing;
  }
}

/** Compares each package of two builds; throws NotReproducibleError naming the first differing files. */
export async function verifyReproducible(pairs: { packageName: string; first: string; second: string }[]): Promise<void> {
  const results = [];
  for (const p of pairs) results.push({ ...p, comparison: await compareApks(p.first, p.second) });
  if (results.some((r) => !r.comparison.identical)) throw new NotReproducibleError(results);
}
