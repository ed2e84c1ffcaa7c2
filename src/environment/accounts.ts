// Users, groups and the few files every build root needs: /etc/passwd and /etc/group with the `build`
// account (uid/gid 1000, home /home/build) plus whatever `environment.accounts` declares, a resolver and hosts
// file, and the directories the runners mount over (a read-only root cannot grow new mount points).
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { resolveInside } from '../archive/safe-extract.ts';
import { resolveRunAs } from '../config/run-as.ts';
import { BuilderError } from '../errors.ts';
import type { AccountsSpec } from './provider.ts';

export interface User {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

export interface Group {
  name: string;
  gid: number;
  members: string[];
}

export interface Accounts {
  users: User[];
  groups: Group[];
  runAs: { uid: number; gid: number };
  /** Default entries (root, nobody, nogroup) a base's own entries of the same name win over. */
  soft: string[];
}

export const BUILD_USER: User = { name: 'build', uid: 1000, gid: 1000, gecos: 'builder', home: '/home/build', shell: '/bin/sh' };
export const BUILD_GROUP: Group = { name: 'build', gid: 1000, members: ['build'] };
const ROOT_USER: User = { name: 'root', uid: 0, gid: 0, gecos: 'root', home: '/root', shell: '/bin/sh' };
const ROOT_GROUP: Group = { name: 'root', gid: 0, members: [] };
const NOBODY_USER: User = { name: 'nobody', uid: 65534, gid: 65534, gecos: 'nobody', home: '/nonexistent', shell: '/usr/sbin/nologin' };
const NOGROUP: Group = { name: 'nogroup', gid: 65534, members: [] };

/**
 * The accounts of a root: root, build and nobody, then the declared ones (a declared user or group replaces
 * a default of the same name), and the uid/gid `run-as` names.
 */
export function resolveAccounts(spec: AccountsSpec | undefined): Accounts {
  const users = new Map<string, User>();
  const groups = new Map<string, Group>();
  for (const u of [ROOT_USER, BUILD_USER, NOBODY_USER]) users.set(u.name, { ...u });
  for (const g of [ROOT_GROUP, BUILD_GROUP, NOGROUP]) groups.set(g.name, { ...g, members: [...g.members] });
  for (const g of spec?.groups ?? []) {
    const gid = g.gid ?? groups.get(g.groupname)?.gid;
    if (gid === undefined) throw new BuilderError(`environment.accounts.groups: group "${g.groupname}" needs a gid`);
    groups.set(g.groupname, { name: g.groupname, gid, members: [...g.members] });
  }
  for (const u of spec?.users ?? []) {
    const existing = users.get(u.username);
    const uid = u.uid ?? existing?.uid;
    if (uid === undefined) throw new BuilderError(`environment.accounts.users: user "${u.username}" needs a uid`);
    users.set(u.username, {
      name: u.username,
      uid,
      gid: u.gid ?? existing?.gid ?? uid,
      gecos: existing?.gecos ?? u.username,
      home: u.homedir ?? existing?.home ?? `/home/${u.username}`,
      shell: u.shell ?? existing?.shell ?? '/bin/sh',
    });
  }
  for (const [field, value] of [...users.values()].flatMap((u) => [['uid', u.uid], ['gid', u.gid]] as const)) {
    if (!Number.isSafeInteger(value) || value < 0) throw new BuilderError(`environment.accounts: invalid ${field} ${value}`);
  }
  for (const u of users.values()) {
    for (const part of [u.name, u.gecos, u.home, u.shell]) {
      if (/[:\n]/.test(part)) throw new BuilderError(`environment.accounts: "${part}" may not contain ':' or a line break`);
    }
  }
  const declared = new Set([...(spec?.users ?? []).map((u) => u.username), ...(spec?.groups ?? []).map((g) => g.groupname)]);
  const soft = ['root', 'nobody', 'nogroup'].filter((n) => !declared.has(n));
  return { users: [...users.values()], groups: [...groups.values()], runAs: runAsOf(spec), soft };
}

function runAsOf(spec: AccountsSpec | undefined): { uid: number; gid: number } {
  // The build user counts as declared, as the compiler adds it to every plan.
  const declared = [...(spec?.users ?? []), { username: BUILD_USER.name, uid: BUILD_USER.uid, gid: BUILD_USER.gid }];
  const resolved = resolveRunAs(spec?.runAs, declared);
  if (!resolved.ok) throw new BuilderError(`environment.accounts.run-as: ${resolved.message}`);
  return { uid: resolved.uid, gid: resolved.gid };
}

const firstField = (line: string): string => line.split(':')[0] ?? '';

/**
 * Merges our entries into an existing passwd/group text: our names replace theirs, except `soft` defaults
 * the existing text already has; other existing lines are kept in place.
 */
function mergeLines(existing: string, ours: string[], soft: readonly string[]): string {
  const kept = existing.split('\n').filter((l) => l.trim() !== '');
  const existingNames = new Set(kept.map(firstField));
  const added = ours.filter((l) => !(soft.includes(firstField(l)) && existingNames.has(firstField(l))));
  const replaced = new Set(added.map(firstField));
  return `${[...kept.filter((l) => !replaced.has(firstField(l))), ...added].join('\n')}\n`;
}

export function passwdText(users: User[], existing = '', soft: readonly string[] = []): string {
  return mergeLines(existing, users.map((u) => `${u.name}:x:${u.uid}:${u.gid}:${u.gecos}:${u.home}:${u.shell}`), soft);
}

export function groupText(groups: Group[], existing = '', soft: readonly string[] = []): string {
  return mergeLines(existing, groups.map((g) => `${g.name}:x:${g.gid}:${g.members.join(',')}`), soft);
}

export const HOSTS = '127.0.0.1\tlocalhost builder\n::1\tlocalhost ip6-localhost ip6-loopback\n';
export const RESOLV_CONF =
  '# builder: builds run without network by default. A build given network access gets the host\'s\n' +
  '# resolver configuration bound over this file.\n';

/**
 * Replaces `rel` inside `root` with `content` (temp file + rename), never writing into the existing inode:
 * roots may share inodes with the base they were copied from by hard links.
 */
export async function replaceFile(root: string, rel: string, content: string, mode = 0o644): Promise<void> {
  const parent = await resolveInside(root, posix.dirname(rel), `root file ${rel}`, true);
  await mkdir(parent, { recursive: true });
  const target = join(parent, posix.basename(rel));
  const st = await lstat(target).catch(() => undefined);
  if (st?.isDirectory()) throw new BuilderError(`cannot write /${rel} in the build root: it is a directory`);
  const temp = join(parent, `.${posix.basename(rel)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(temp, content, { mode });
    await chmod(temp, mode);
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** A file of the root read as the sandbox would see it (links resolved inside the root); null when absent. */
export async function readRootFileOrNull(root: string, rel: string): Promise<string | null> {
  try {
    const path = await resolveInside(root, rel, `root file ${rel}`, true);
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

export async function readRootFile(root: string, rel: string): Promise<string> {
  return (await readRootFileOrNull(root, rel)) ?? '';
}

/** Directories that must exist in every root: mount points and the accounts' homes. */
function requiredDirectories(accounts: Accounts): { path: string; mode: number }[] {
  const dirs = [
    { path: 'dev', mode: 0o755 },
    { path: 'proc', mode: 0o555 },
    { path: 'sys', mode: 0o555 },
    { path: 'run', mode: 0o755 },
    { path: 'tmp', mode: 0o1777 },
    { path: 'var/tmp', mode: 0o1777 },
    { path: 'etc', mode: 0o755 },
    { path: 'root', mode: 0o700 },
    { path: 'home/build', mode: 0o755 },
    { path: 'var/cache/melange', mode: 0o755 },
  ];
  for (const u of accounts.users) {
    const home = posix.normalize(u.home).replace(/^\/+/, '');
    if (home !== '' && home !== 'nonexistent' && !home.startsWith('..') && !dirs.some((d) => d.path === home)) {
      dirs.push({ path: home, mode: 0o755 });
    }
  }
  return dirs;
}

/** Writes accounts, hosts, resolv.conf and the mount-point directories into a root being made. */
export async function writeRootFiles(root: string, accounts: Accounts): Promise<void> {
  for (const d of requiredDirectories(accounts)) {
    const path = await resolveInside(root, d.path, `root directory /${d.path}`, true);
    const st = await lstat(path).catch(() => undefined);
    if (st && !st.isDirectory()) throw new BuilderError(`the build root's /${d.path} exists and is not a directory`);
    if (!st) {
      await mkdir(path, { recursive: true });
      await chmod(path, d.mode);
    }
  }
  await replaceFile(root, 'etc/passwd', passwdText(accounts.users, await readRootFile(root, 'etc/passwd'), accounts.soft));
  await replaceFile(root, 'etc/group', groupText(accounts.groups, await readRootFile(root, 'etc/group'), accounts.soft));
  await replaceFile(root, 'etc/hosts', HOSTS);
  await replaceFile(root, 'etc/hostname', 'builder\n');
  // A regular file, never a link into /run: the runner binds the host's file over it when networking is on.
  await replaceFile(root, 'etc/resolv.conf', RESOLV_CONF);
}
