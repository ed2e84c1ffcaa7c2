// The workspace going into the VM: the host directory as one tar stream (sent over the control channel and
// unpacked by the guest's busybox tar), owned by the build user, with names relative to /home/build.
import { createReadStream } from 'node:fs';
import { lstat, opendir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { BuilderError } from '../../errors.ts';

export interface PackOptions {
  /** Owner recorded for every entry (numeric; no user names, so the guest needs no passwd entry). */
  uid: number;
  gid: number;
  signal?: AbortSignal;
}

/** Streams `dir`'s contents as a tar archive; files are read as the archive is consumed. */
export function packDirectory(dir: string, options: PackOptions): Readable {
  return packTree(dir, undefined, options);
}

function packTree(dir: string, topLevel: string[] | undefined, options: PackOptions): Readable {
  const pack = tar.pack();
  const owner = { uid: options.uid, gid: options.gid, uname: '', gname: '' };
  const walk = async (rel: string, only?: string[]): Promise<void> => {
    let names: string[];
    if (only) {
      names = only;
    } else {
      const handle = await opendir(rel === '' ? dir : join(dir, rel));
      names = [];
      for await (const d of handle) names.push(d.name);
      names.sort();
    }
    const parents = new Set<string>();
    for (const name of names) {
      options.signal?.throwIfAborted();
      const path = rel === '' ? name : `${rel}/${name}`;
      // A named entry like git/<digest> needs its parent directories in the archive first.
      for (let i = path.indexOf('/'); only && i > 0; i = path.indexOf('/', i + 1)) {
        const parent = path.slice(0, i);
        if (parents.has(parent)) continue;
        parents.add(parent);
        pack.entry({ name: parent, type: 'directory', mode: 0o755, mtime: new Date(0), ...owner });
      }
      const full = join(dir, path);
      const st = await lstat(full);
      const common = { name: path, mode: st.mode & 0o7777, mtime: st.mtime, ...owner };
      if (st.isDirectory()) {
        pack.entry({ ...common, type: 'directory' });
        await walk(path);
      } else if (st.isSymbolicLink()) {
        pack.entry({ ...common, type: 'symlink', linkname: await readlink(full) });
      } else if (st.isFile()) {
        const entry = pack.entry({ ...common, type: 'file', size: st.size });
        await pipeline(createReadStream(full), entry);
      } else {
        throw new BuilderError(`${full} is neither a file, a directory nor a symlink; it cannot be sent to the VM`);
      }
    }
  };
  walk('', topLevel).then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))),
  );
  // tar-stream's pack is a streamx stream; hand out a Node stream that fails when the packing fails.
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  pipeline(pack, out).catch((err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))));
  return out;
}
