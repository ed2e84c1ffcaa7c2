// YAML read the way melange reads recipes: every scalar keeps its source text (`1.10` stays "1.10",
// `00303` stays "00303", `true` stays "true"), anchors/aliases/merge keys resolve, and every node keeps its
// file:line:col so any later error can point at it.
import { readFile } from 'node:fs/promises';
import { Alias, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { ConfigError, type ConfigProblem, type SourceLocation } from '../errors.ts';

export interface YScalar {
  kind: 'scalar';
  /** Source text; null for YAML null (`~`, `null`, or nothing), which melange reads as "". */
  value: string | null;
  loc: SourceLocation;
}
export interface YEntry {
  key: string;
  keyLoc: SourceLocation;
  value: YNode;
}
export interface YMap {
  kind: 'map';
  entries: YEntry[];
  loc: SourceLocation;
}
export interface YSeq {
  kind: 'seq';
  items: YNode[];
  loc: SourceLocation;
}
export type YNode = YScalar | YMap | YSeq;

const NULLS = new Set(['', '~', 'null', 'Null', 'NULL']);

// What YAML calls non-printable (and Go's YAML refuses): C0 controls but tab, LF and CR; DEL; C1 but NEL.
const CONTROL = /[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x84\x86-\x9F\uFFFE\uFFFF]/g;
const UNPRINTABLE = /[\x00-\x08\x0A-\x1F\x7F-\x9F\uFFFE\uFFFF]/g;

/** `text` with control characters written as escapes (`\u0000`, `\n`), so a message stays one clean line. */
export function escapeControls(text: string): string {
  return text.replace(UNPRINTABLE, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** Raw control characters in the text, one problem per line that has any (as Go's YAML, which refuses them). */
function controlCharacters(text: string, at: (offset: number) => SourceLocation): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  let lastLine = -1;
  for (const m of text.matchAll(CONTROL)) {
    const location = at(m.index);
    if (location.line === lastLine) continue;
    lastLine = location.line;
    problems.push({ location, path: '', message: `control character ${escapeControls(m[0])} is not allowed in YAML` });
  }
  return problems;
}

/** Parse YAML text into located nodes. Throws ConfigError with every syntax problem found. */
export function parseYaml(text: string, file: string): YNode {
  const lines = new LineCounter();
  const doc = parseDocument(text, { schema: 'failsafe', lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): SourceLocation => {
    const p = lines.linePos(offset);
    return { file, line: p.line, col: p.col };
  };
  if (text.search(CONTROL) >= 0) throw new ConfigError(controlCharacters(text, at));
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({ location: at(e.pos[0]), path: '', message: escapeControls(cleanYamlMessage(e.message)) })),
    );
  }
  const problems: ConfigProblem[] = [];

  const convert = (node: Node | Alias | null | undefined, fallback: number): YNode => {
    if (node == null) return { kind: 'scalar', value: null, loc: at(fallback) };
    if (isAlias(node)) {
      const target = node.resolve(doc);
      return convert(target as Node | undefined, node.range?.[0] ?? fallback);
    }
    const start = node.range?.[0] ?? fallback;
    if (isScalar(node)) {
      const raw = node.value;
      const value = typeof raw === 'string' ? raw : raw == null ? null : String(raw);
      const isPlain = node.type === 'PLAIN' || node.type === undefined;
      // A NUL written as an escape ("\0") passes the YAML reader, but no key, argument or script can hold it.
      if (value?.includes('\0')) problems.push({ location: at(start), path: '', message: `"${escapeControls(value)}" contains a NUL character` });
      return { kind: 'scalar', value: isPlain && value !== null && NULLS.has(value) ? null : value, loc: at(start) };
    }
    if (isSeq(node)) {
      return { kind: 'seq', items: node.items.map((item) => convert(item as Node, start)), loc: at(start) };
    }
    if (isMap(node)) {
      const entries: YEntry[] = [];
      const merged: YEntry[] = [];
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const keyStart = keyNode?.range?.[0] ?? start;
        const key = convert(keyNode, keyStart);
        if (key.kind !== 'scalar') {
          problems.push({ location: key.loc, path: '', message: 'a mapping key must be a plain string' });
          continue;
        }
        const value = convert(pair.value as Node | null, keyStart);
        if (key.value === '<<' && isAlias(keyNode) === false && (value.kind === 'map' || value.kind === 'seq')) {
          // Merge keys: explicit keys of this map win over merged ones, earlier merge sources over later.
          const sources = value.kind === 'map' ? [value] : value.items;
          for (const src of sources) {
            if (src.kind !== 'map') {
              problems.push({ location: src.loc, path: '', message: 'a merge key (<<) needs a mapping or a list of mappings' });
              continue;
            }
            for (const e of src.entries) if (!merged.some((m) => m.key === e.key)) merged.push(e);
          }
          continue;
        }
        entries.push({ key: key.value ?? '', keyLoc: key.loc, value });
      }
      for (const m of merged) if (!entries.some((e) => e.key === m.key)) entries.push(m);
      return { kind: 'map', entries, loc: at(start) };
    }
    return { kind: 'scalar', value: null, loc: at(start) };
  };

  const root = convert(doc.contents as Node | null, 0);
  if (problems.length > 0) throw new ConfigError(problems);
  return root;
}

export async function readYamlFile(file: string): Promise<YNode> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String(code);
    throw new ConfigError([{ location: { file, line: 0, col: 0 }, path: '', message: `cannot read recipe: ${why}` }]);
  }
  return parseYaml(text, file);
}

function cleanYamlMessage(message: string): string {
  // The yaml package appends a code excerpt and position we already report; keep the first line.
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '');
}
