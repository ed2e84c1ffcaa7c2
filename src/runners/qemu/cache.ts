// The melange cache (/var/cache/melange) in the VM, read-write like melange's: the guest kernel (Debian's cloud
// kernel) has no 9p and virtiofs needs a daemon Debian 12 lacks, so the host's --cache-dir goes in as one tar
// stream after the workspace, and at the end of the build every file the steps created or changed there (its
// ctime is after the upload) comes back into --cache-dir. Nothing but --cache-dir crosses, either way; deletions
// are not carried back.
import { mkdir, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { extractTar } from '../../archive/safe-extract.ts';
import { BuilderError } from '../../errors.ts';
import type { PodConfig } from '../runner.ts';
import type { SshConnection } from './ssh.ts';
import { packDirectory } from './workspace.ts';

export const GUEST_CACHE = '/mnt/root/var/cache/melange';
/** When the upload finished, in guest seconds: a file whose ctime is not older was written by a step. */
const STAMP = '/run/builder/cache-stamp';

/** Sends the whole --cache-dir into the guest's /var/cache/melange, owned by the build user. */
export async function uploadCache(pod: PodConfig, control: SshConnection, log: (line: string) => void, signal: AbortSignal): Promise<void> {
  // A cache dir that does not exist yet is an empty cache (saveCache makes it when a step writes there).
  if (!(await stat(pod.cacheDir).catch(() => undefined))?.isDirectory()) {
    await control.exec(`date +%s >${STAMP}`, { signal });
    return;
  }
  const upload = await control.exec(`tar -x -f - -C ${GUEST_CACHE} && date +%s >${STAMP}`, {
    stdin: packDirectory(pod.cacheDir, { uid: pod.runAs.uid, gid: pod.runAs.gid, signal }),
    onStderr: (chunk) => log(`cache upload: ${chunk.toString('utf8').trimEnd()}`),
    signal,
  });
  if (upload.code !== 0) throw new BuilderError(`${pod.packageName}: sending the cache into the VM failed (guest tar exit ${upload.code ?? upload.signal})`);
}

/**
 * The files changed since the upload, as a tar stream (empty when none). Compared by ctime, which every write,
 * rename or utime moves, so a step that unpacks files with old mtimes (go mod download, tar -x) is still seen;
 * the second granularity may carry back a file unpacked in the upload's last second, which is harmless.
 */
const CHANGED_FILES = [
  `cd ${GUEST_CACHE} || exit 0`,
  `[ -r ${STAMP} ] || exit 0`,
  `read -r stamp <${STAMP}`,
  'list=/run/builder/cache-changed',
  `find . ! -type d -exec stat -c '%Z %n' {} + | while read -r t name; do [ "$t" -ge "$stamp" ] && printf '%s\\n' "$name"; done >$list`,
  '[ -s $list ] || exit 0',
  // Busybox tar has no -T: the names become its arguments (find prefixes each with ./).
  'set --',
  'while read -r name; do set -- "$@" "$name"; done <$list',
  'exec tar -c -f - "$@"',
].join('\n');

/** Copies what the steps wrote under /var/cache/melange back into --cache-dir (path-safe extraction). */
export async function saveCache(pod: PodConfig, control: SshConnection, log: (line: string) => void): Promise<void> {
  const stream: Readable = await control.execStream(`sh -c '${CHANGED_FILES.replaceAll("'", "'\\''")}'`, 'reading /var/cache/melange from the VM');
  await mkdir(pod.cacheDir, { recursive: true });
  const result = await extractTar(stream, { dest: pod.cacheDir, where: `${pod.packageName}: /var/cache/melange from the VM` });
  if (result.entries > 0) log(`cache: ${result.entries} entries (${(result.bytes / 1e6).toFixed(1)} MB) written by the steps kept in ${pod.cacheDir}`);
}
