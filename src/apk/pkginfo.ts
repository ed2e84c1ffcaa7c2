// `.PKGINFO`: the package's metadata as apk reads it (see shared/notes/apk-format.md).
import { PackageFormatError } from '../errors.ts';
import { isValidApkVersion } from './version.ts';

export { compareApkVersions, isValidApkVersion, apkVersionSatisfies } from './version.ts';
export type { ApkVersionOperator } from './version.ts';

export interface PackageInfo {
  pkgname: string;
  /** `<version>-r<epoch>` */
  pkgver: string;
  arch: string;
  /** Installed size in bytes; apk requires it to be non-zero. */
  size: number;
  origin?: string;
  pkgdesc?: string;
  url?: string;
  commit?: string;
  maintainer?: string;
  /** Unix seconds. */
  builddate?: number;
  license: string[];
  depend: string[];
  provides: string[];
  replaces: string[];
  installIf: string[];
  providerPriority?: number;
  replacesPriority?: number;
  triggers: string[];
  /** Lowercase hex SHA-256 of the compressed data stream. */
  datahash?: string;
}

const PACKAGE_NAME = /^[a-zA-Z\d][a-zA-Z\d+_.-]*$/;
const DATAHASH = /^[0-9a-f]{64}$/;

export function isValidPackageName(name: string): boolean {
  return PACKAGE_NAME.test(name);
}

/** An empty PackageInfo with every list present, for building one up field by field. */
export function emptyPackageInfo(pkgname: string, pkgver: string, arch: string): PackageInfo {
  return {
    pkgname,
    pkgver,
    arch,
    size: 0,
    license: [],
    depend: [],
    provides: [],
    replaces: [],
    installIf: [],
    triggers: [],
  };
}

/**
 * Problems with `info` that would make apk misread or reject it, as messages naming the field. The caller
 * decides which error class to raise (a recipe problem when writing, a format problem when reading).
 */
export function pkginfoProblems(info: PackageInfo, opts: { requireSize: boolean }): string[] {
  const problems: string[] = [];
  if (!info.pkgname) problems.push('pkgname is missing');
  else if (!isValidPackageName(info.pkgname)) problems.push(`pkgname "${info.pkgname}" is not a valid package name`);
  if (!info.pkgver) problems.push('pkgver is missing');
  else if (!isValidApkVersion(info.pkgver)) problems.push(`pkgver "${info.pkgver}" is not a valid apk version`);
  else if (!/-r\d+$/.test(info.pkgver)) problems.push(`pkgver "${info.pkgver}" lacks the -r<epoch> suffix`);
  if (!info.arch) problems.push('arch is missing');
  if (opts.requireSize && !(info.size > 0)) problems.push('size must be non-zero (apk extracts nothing otherwise)');
  if (!Number.isSafeInteger(info.size) || info.size < 0) problems.push(`size ${info.size} is not a byte count`);
  if (info.datahash !== undefined && !DATAHASH.test(info.datahash)) {
    problems.push('datahash is not a lowercase hex SHA-256');
  }
  for (const [key, value] of scalarFields(info)) {
    if (value !== undefined && /[\n\r\0]/.test(value)) problems.push(`${key} contains a line break or NUL`);
  }
  for (const [key, values] of listFields(info)) {
    for (const v of values) {
      if (v === '' || /\s|\0/.test(v)) problems.push(`${key} item "${v}" is empty or contains whitespace`);
    }
  }
  for (const v of info.license) {
    if (v === '' || /[\n\r\0]/.test(v)) problems.push(`license "${v}" is empty or contains a line break`);
  }
  for (const key of ['builddate', 'providerPriority', 'replacesPriority'] as const) {
    const v = info[key];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) problems.push(`${key} ${v} is not a non-negative integer`);
  }
  return problems;
}

function scalarFields(info: PackageInfo): [string, string | undefined][] {
  return [
    ['pkgname', info.pkgname],
    ['pkgver', info.pkgver],
    ['arch', info.arch],
    ['origin', info.origin],
    ['pkgdesc', info.pkgdesc],
    ['url', info.url],
    ['commit', info.commit],
    ['maintainer', info.maintainer],
  ];
}

function listFields(info: PackageInfo): [string, string[]][] {
  return [
    ['depend', info.depend],
    ['provides', info.provides],
    ['replaces', info.replaces],
    ['install_if', info.installIf],
    ['triggers', info.triggers],
  ];
}

/**
 * Renders `.PKGINFO` in a fixed key order, one `key = value` per line and one line per list item, except
 * `triggers`: apk keeps only the last `triggers` line, so all trigger paths go on one space-separated line.
 */
export function renderPkginfo(info: PackageInfo): string {
  const lines: string[] = [];
  const put = (key: string, value: string | number | undefined): void => {
    if (value !== undefined) lines.push(`${key} = ${value}`);
  };
  put('pkgname', info.pkgname);
  put('pkgver', info.pkgver);
  put('arch', info.arch);
  put('size', info.size);
  put('origin', info.origin);
  put('pkgdesc', info.pkgdesc);
  put('url', info.url);
  put('commit', info.commit);
  put('maintainer', info.maintainer);
  put('builddate', info.builddate);
  for (const v of info.license) put('license', v);
  for (const v of info.depend) put('depend', v);
  for (const v of info.provides) put('provides', v);
  for (const v of info.replaces) put('replaces', v);
  for (const v of info.installIf) put('install_if', v);
  put('provider_priority', info.providerPriority);
  put('replaces_priority', info.replacesPriority);
  if (info.triggers.length > 0) put('triggers', info.triggers.join(' '));
  put('datahash', info.datahash);
  return `${lines.join('\n')}\n`;
}

function parseCount(value: string, key: string, where: string, lineNo: number): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new PackageFormatError(`${where}:${lineNo}: ${key} "${value}" is not a non-negative integer`);
  }
  return Number(value);
}

function words(value: string): string[] {
  return value.split(/[ \t]+/).filter((w) => w !== '');
}

/**
 * Parses `.PKGINFO` text the way apk does: `key = value` lines (the spaces around `=` are required), `#`
 * comments, unknown keys ignored; `triggers` and scalar keys keep their last value. Errors name `where`.
 */
export function parsePkginfo(text: string, where: string): PackageInfo {
  const info = emptyPackageInfo('', '', '');
  let sawSize = false;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const lineNo = i + 1;
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf(' = ');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 3);
    switch (key) {
      case 'pkgname':
        info.pkgname = value;
        break;
      case 'pkgver':
        info.pkgver = value;
        break;
      case 'arch':
        info.arch = value;
        break;
      case 'size':
        info.size = parseCount(value, key, where, lineNo);
        sawSize = true;
        break;
      case 'origin':
        info.origin = value;
        break;
      case 'pkgdesc':
        info.pkgdesc = value;
        break;
      case 'url':
        info.url = value;
        break;
      case 'commit':
        info.commit = value;
        break;
      case 'maintainer':
        info.maintainer = value;
        break;
      case 'builddate':
        info.builddate = parseCount(value, key, where, lineNo);
        break;
      case 'license':
        info.license.push(value);
        break;
      case 'depend':
        info.depend.push(...words(value));
        break;
      case 'provides':
        info.provides.push(...words(value));
        break;
      case 'replaces':
        info.replaces.push(...words(value));
        break;
      case 'install_if':
        info.installIf.push(...words(value));
        break;
      case 'provider_priority':
        info.providerPriority = parseCount(value, key, where, lineNo);
        break;
      case 'replaces_priority':
        info.replacesPriority = parseCount(value, key, where, lineNo);
        break;
      case 'triggers':
        info.triggers = words(value);
        break;
      case 'datahash':
        info.datahash = value;
        break;
      default:
        break;
    }
  }
  if (!info.pkgname) throw new PackageFormatError(`${where}: .PKGINFO has no pkgname`);
  if (!info.pkgver) throw new PackageFormatError(`${where}: .PKGINFO has no pkgver`);
  if (!sawSize) throw new PackageFormatError(`${where}: .PKGINFO has no size`);
  const problems = pkginfoProblems(info, { requireSize: true });
  if (problems.length > 0) throw new PackageFormatError(`${where}: .PKGINFO: ${problems.join('; ')}`);
  return info;
}
