// What a base root already provides, in apk's terms, so APK packages layered on top resolve against it:
// installed Debian packages (dpkg status) and apk packages (lib/apk/db/installed) by name, shared libraries as
// `so:` names, executables on the standard paths as `cmd:`, pkg-config modules as `pc:`.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveInside } from '../archive/safe-extract.ts';

/** name → version (undefined when unknown). */
export type BaseProvides = Map<string, string | undefined>;

const LIB_DIRS = ['lib', 'lib64', 'usr/lib', 'usr/lib64', 'usr/local/lib'];
const BIN_DIRS = ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'usr/local/bin', 'usr/local/sbin'];
const PC_DIRS = ['usr/lib/pkgconfig', 'usr/share/pkgconfig', 'usr/lib64/pkgconfig', 'usr/local/lib/pkgconfig'];
const SONAME = /\.so(\.\d+)*$/;

async function readInside(root: string, rel: string): Promise<string> {
  try {
    return await readFile(await resolveInside(root, rel, rel, true), 'utf8');
  } catch {
    return '';
  }
}

async function listInside(root: string, rel: string, seen: Set<string>): Promise<{ name: string; dir: string }[]> {
  let dir: string;
  try {
    dir = await resolveInside(root, rel, rel, true);
  } catch {
    return [];
  }
  if (seen.has(dir)) return [];
  seen.add(dir);
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => !e.isDirectory()).map((e) => ({ name: e.name, dir }));
  } catch {
    return [];
  }
}

/** Debian's `Package`/`Version`/`Provides` of installed packages. */
export function parseDpkgStatus(text: string, into: BaseProvides): void {
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const line of stanza.split('\n')) {
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last) ?? ''}\n${line.trim()}`);
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      last = line.slice(0, colon);
      fields.set(last, line.slice(colon + 1).trim());
    }
    const name = fields.get('Package');
    if (!name || !/\binstalled\b/.test(fields.get('Status') ?? '') || /not-installed|config-files/.test(fields.get('Status') ?? '')) continue;
    into.set(name, fields.get('Version'));
    for (const p of (fields.get('Provides') ?? '').split(',')) {
      const m = /^\s*([^\s(]+)\s*(?:\(\s*=\s*([^)\s]+)\s*\))?/.exec(p);
      if (m?.[1] && !into.has(m[1])) into.set(m[1], m[2]);
    }
  }
}

/** apk's installed database: `P:`, `V:` and `p:` of each package. */
export function parseApkInstalled(text: string, into: BaseProvides): void {
  for (const stanza of text.split(/\n\s*\n/)) {
    let name: string | undefined;
    let version: string | undefined;
    const provides: string[] = [];
    for (const line of stanza.split('\n')) {
      if (line.startsWith('P:')) name = line.slice(2);
      else if (line.startsWith('V:')) version = line.slice(2);
      else if (line.startsWith('p:')) provides.push(...line.slice(2).split(' ').filter((w) => w !== ''));
    }
    if (!name) continue;
    into.set(name, version);
    for (const p of provides) {
      const eq = p.indexOf('=');
      into.set(eq < 0 ? p : p.slice(0, eq), eq < 0 ? undefined : p.slice(eq + 1));
    }
  }
}

/** Library directories: the standard ones, multiarch ones, and those named in /etc/ld.so.conf.d. */
async function libraryDirs(root: string): Promise<string[]> {
  const dirs = [...LIB_DIRS];
  for (const parent of ['lib', 'usr/lib']) {
    try {
      const entries = await readdir(await resolveInside(root, parent, parent, true), { withFileTypes: true });
      for (const e of entries) if (/-linux-(gnu|musl)/.test(e.name)) dirs.push(`${parent}/${e.name}`);
    } catch {
      // no such directory in this root
    }
  }
  const confs = ['etc/ld.so.conf'];
  try {
    const d = await resolveInside(root, 'etc/ld.so.conf.d', 'ld.so.conf.d', true);
    for (const n of (await readdir(d)).sort()) if (n.endsWith('.conf')) confs.push(`etc/ld.so.conf.d/${n}`);
  } catch {
    // none
  }
  for (const conf of confs) {
    for (const line of (await readInside(root, conf)).split('\n')) {
      const t = line.trim();
      if (t.startsWith('/')) dirs.push(t.slice(1));
    }
  }
  return dirs;
}

/**
 * How the base provides a need `name`, if it does: the name itself, or its `cmd:`, `pc:` or `so:` virtual
 * (melange's `needs` name commands as often as packages: `ninja` is Debian's ninja-build's /usr/bin/ninja).
 */
export function baseProvision(base: ReadonlyMap<string, string | undefined>, name: string): string | undefined {
  if (base.has(name)) return name;
  for (const prefix of ['cmd:', 'pc:', 'so:']) if (base.has(prefix + name)) return prefix + name;
  return undefined;
}

export async function scanBaseProvides(root: string): Promise<BaseProvides> {
  const provides: BaseProvides = new Map();
  parseDpkgStatus(await readInside(root, 'var/lib/dpkg/status'), provides);
  parseApkInstalled(await readInside(root, 'lib/apk/db/installed'), provides);
  const seen = new Set<string>();
  for (const dir of await libraryDirs(root)) {
    for (const e of await listInside(root, dir, seen)) {
      if (SONAME.test(e.name) && !provides.has(`so:${e.name}`)) provides.set(`so:${e.name}`, undefined);
    }
    for (const e of await listInside(root, join(dir, 'pkgconfig'), seen)) {
      if (e.name.endsWith('.pc')) provides.set(`pc:${e.name.slice(0, -3)}`, undefined);
    }
  }
  for (const dir of PC_DIRS) {
    for (const e of await listInside(root, dir, seen)) {
      if (e.name.endsWith('.pc')) provides.set(`pc:${e.name.slice(0, -3)}`, undefined);
    }
  }
  for (const dir of BIN_DIRS) {
    for (const e of await listInside(root, dir, seen)) provides.set(`cmd:${e.name}`, undefined);
  }
  return provides;
}
