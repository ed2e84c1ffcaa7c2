import { describe, expect, it } from 'vitest';
import { type RootNode, resolveInRoot } from '../../src/paths/in-root.ts';

/** A root given as a table: directories end with `/`, links map to their target, anything else is a file. */
function view(table: Record<string, string>): (rel: string) => RootNode {
  return (rel) => {
    if (`${rel}/` in table) return { kind: 'directory' };
    const v = table[rel];
    if (v === undefined) return { kind: 'missing' };
    return v.startsWith('->') ? { kind: 'link', target: v.slice(2) } : { kind: 'other' };
  };
}

const root = view({ 'usr/': '', 'usr/lib/': '', 'usr/lib/libc.so': 'f', lib: '->usr/lib', abs: '->/usr/lib/libc.so', up: '->../../../usr', loop: '->loop', f: 'x' });

describe('resolveInRoot', () => {
  it('follows relative and absolute links from the root', () => {
    expect(resolveInRoot('lib/libc.so', root)).toEqual({ ok: true, rel: 'usr/lib/libc.so' });
    expect(resolveInRoot('/abs', root)).toEqual({ ok: true, rel: 'usr/lib/libc.so' });
  });
  it('keeps `..` at the root unless told to refuse it', () => {
    expect(resolveInRoot('up/lib', root)).toEqual({ ok: true, rel: 'usr/lib' });
    expect(resolveInRoot('up/lib', root, { refuseEscape: true })).toEqual({ ok: false, reason: 'escape' });
  });
  it('stops link loops, missing names and names under files', () => {
    expect(resolveInRoot('loop', root)).toEqual({ ok: false, reason: 'loop' });
    expect(resolveInRoot('usr/nope', root)).toEqual({ ok: false, reason: 'missing' });
    expect(resolveInRoot('f/x', root)).toEqual({ ok: false, reason: 'not-directory' });
    expect(resolveInRoot('usr/new/dir', root, { lenient: true })).toEqual({ ok: true, rel: 'usr/new/dir' });
  });
  it('returns a final link itself when not following it, and reports links passed', () => {
    const seen: string[] = [];
    expect(resolveInRoot('lib', root, { followLast: false })).toEqual({ ok: true, rel: 'lib' });
    resolveInRoot('lib/libc.so', root, { onLink: (l) => seen.push(l) });
    expect(seen).toEqual(['lib']);
  });
});
