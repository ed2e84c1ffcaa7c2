// The C library + program example of the issue, compiled for real: `libgreet` (the library), `greet` (a
// program linked against it) and `libgreet-dev` (the `.so` symlink, a header and a `.pc` file).
import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';

export interface GreetBuild {
  /** Parent of the three package directories. */
  out: string;
  lib: string;
  program: string;
  dev: string;
}

export async function put(root: string, rel: string, content: string | Buffer, mode = 0o644): Promise<string> {
  const p = join(root, rel);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, content);
  await chmod(p, mode);
  return p;
}

export async function link(root: string, rel: string, target: string): Promise<void> {
  const p = join(root, rel);
  await mkdir(dirname(p), { recursive: true });
  await symlink(target, p);
}

export async function buildGreet(work: string): Promise<GreetBuild> {
  const src = join(work, 'src');
  await mkdir(src, { recursive: true });
  await writeFile(join(src, 'greet.c'), '#include <stdio.h>\nint greet(int x) { puts("hello"); return x + 1; }\n');
  await writeFile(join(src, 'main.c'), 'int greet(int);\nint main(void) { return greet(41) == 42 ? 0 : 1; }\n');
  await execa('cc', ['-shared', '-fPIC', '-Wl,-soname,libgreet.so.1', '-o', 'libgreet.so.1.2.3', 'greet.c'], { cwd: src });
  await execa('ln', ['-sf', 'libgreet.so.1.2.3', 'libgreet.so'], { cwd: src });
  await execa('cc', ['-o', 'greet', 'main.c', '-L.', '-lgreet'], { cwd: src });

  const out = join(work, 'out');
  const lib = join(out, 'libgreet');
  const program = join(out, 'greet');
  const dev = join(out, 'libgreet-dev');
  await put(lib, 'usr/lib/libgreet.so.1.2.3', await readFile(join(src, 'libgreet.so.1.2.3')), 0o755);
  await link(lib, 'usr/lib/libgreet.so.1', 'libgreet.so.1.2.3');
  await put(program, 'usr/bin/greet', await readFile(join(src, 'greet')), 0o755);
  await link(dev, 'usr/lib/libgreet.so', 'libgreet.so.1');
  await put(dev, 'usr/include/greet.h', 'int greet(int);\n');
  await put(
    dev,
    'usr/lib/pkgconfig/greet.pc',
    [
      'prefix=/usr',
      'libdir=${prefix}/lib',
      'version=1.2.3',
      '',
      'Name: greet',
      'Description: greets',
      'Version: ${version}',
      'Requires: zlib >= 1.2.11, libfoo',
      'Requires.private: libbar',
      'Libs: -L${libdir} -lgreet',
      '',
    ].join('\n'),
  );
  return { out, lib, program, dev };
}

export const NO_OPTIONS = { noProvides: false, noDepends: false, noCommands: false };
