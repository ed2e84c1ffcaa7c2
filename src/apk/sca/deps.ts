// Dependency and provides strings as `.PKGINFO` carries them: `name`, `name=1.2-r0`, `name>=2`, `!name`.
import { isValidApkVersion } from '../version.ts';

/** The name part of a dependency or provides string (constraint removed, a conflict's `!` kept). */
export function dependencyName(dep: string): string {
  const m = /^(!?[^<>=~]+)/.exec(dep);
  return m?.[1] ?? dep;
}

/**
 * Declared entries first, then generated ones whose name is not declared yet: one entry per name, the
 * first kept (a recipe's `foo>=2` beats a scanned `foo`). Sorted by byte order.
 */
export function mergeByName(declared: readonly string[], generated: readonly string[]): string[] {
  const byName = new Map<string, string>();
  for (const d of [...declared, ...generated]) {
    const key = dependencyName(d);
    if (!byName.has(key)) byName.set(key, d);
  }
  return [...byName.values()].sort(byteOrder);
}

export function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** pkg-config versions use `-rc1` where apk wants `_rc1`. Null when no apk version can be made of it. */
export function apkVersionFromPc(version: string): string | null {
  const v = version.trim().replace(/-(alpha|beta|rc|pre)/g, '_$1');
  return v !== '' && isValidApkVersion(v) && !/-r\d+$/.test(v) ? v : null;
}

const PC_TO_APK_OP: Readonly<Record<string, string>> = { '=': '=', '<': '<', '>': '>', '<=': '<=', '>=': '>=' };

/** `pc:<module>` with the requirement's constraint when apk can express it. */
export function pcDependency(module: string, op: string | undefined, version: string | undefined): string {
  const apkOp = op === undefined ? undefined : PC_TO_APK_OP[op];
  const apkVersion = version === undefined ? null : apkVersionFromPc(version);
  return apkOp !== undefined && apkVersion !== null ? `pc:${module}${apkOp}${apkVersion}` : `pc:${module}`;
}

/**
 * The version a library provides: from the real file's name (`libfoo.so.1.2.3` → `1.2.3`, as abuild does),
 * else from the SONAME (`libfoo.so.1` → `1`), else `0`.
 */
export function sharedLibraryVersion(fileName: string, soname: string): string {
  // The file name only counts when it extends the SONAME (`libfoo.so.1` → `libfoo.so.1.2.3`).
  const names = fileName.startsWith(`${soname}.`) ? [fileName, soname] : [soname];
  for (const name of names) {
    const i = name.indexOf('.so.');
    if (i < 0) continue;
    const v = name.slice(i + 4);
    if (v !== '' && isValidApkVersion(v) && !/-r\d+$/.test(v)) return v;
  }
  return '0';
}
