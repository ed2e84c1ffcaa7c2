// Editing a recipe in place (`bump`, `license-check --fix`): the `yaml` document gives the byte ranges of its
// nodes, and only those ranges are replaced in the text, so every comment, quote style, indentation and
// blank line elsewhere stays byte for byte (re-encoding the whole document would normalise them).
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair, type YAMLMap } from 'yaml';

export interface TextEdit {
  start: number;
  end: number;
  text: string;
}

export interface EditableYaml {
  text: string;
  doc: Document;
  lines: LineCounter;
  root: YAMLMap | undefined;
}

export function editableYaml(text: string): EditableYaml {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, keepSourceTokens: true });
  return { text, doc, lines, root: isMap(doc.contents) ? doc.contents : undefined };
}

export function pairOf(map: YAMLMap | undefined, key: string): Pair<unknown, unknown> | undefined {
  return (map?.items as Pair<unknown, unknown>[] | undefined)?.find((p) => isScalar(p.key) && String(p.key.value) === key);
}

export function mapAt(map: YAMLMap | undefined, key: string): YAMLMap | undefined {
  const v = pairOf(map, key)?.value;
  return isMap(v) ? v : undefined;
}

export function keyStart(pair: Pair<unknown, unknown> | undefined): number | undefined {
  return isScalar(pair?.key) ? pair.key.range?.[0] : undefined;
}

export function scalarText(node: unknown): string | undefined {
  return isScalar(node) && node.value !== null ? String(node.value) : undefined;
}

/** Every step mapping of a pipeline list, nested `pipeline:` steps included. */
export function pipelineSteps(node: unknown): YAMLMap[] {
  if (!isSeq(node)) return [];
  const out: YAMLMap[] = [];
  for (const item of node.items) {
    if (!isMap(item)) continue;
    out.push(item);
    out.push(...pipelineSteps(pairOf(item, 'pipeline')?.value));
  }
  return out;
}

export function replaceNode(node: Node, text: string): TextEdit {
  const [start, end] = node.range ?? [0, 0];
  return { start, end, text };
}

/** The column `offset` is at on its line. */
export function columnOf(text: string, offset: number): number {
  return offset - (text.lastIndexOf('\n', offset - 1) + 1);
}

/** A new line after the line `node` ends on, indented like the line `node` starts on. */
export function insertLineAfter(text: string, node: Node, line: string): TextEdit {
  const [start, end] = node.range ?? [0, 0];
  const lineStart = text.lastIndexOf('\n', start - 1) + 1;
  const indent = /^[ \t]*/.exec(text.slice(lineStart))?.[0] ?? '';
  const eol = text.indexOf('\n', Math.max(end - 1, start));
  const pos = eol < 0 ? text.length : eol;
  return { start: pos, end: pos, text: `\n${indent}${line.split('\n').join(`\n${indent}`)}` };
}

export function applyEdits(text: string, edits: TextEdit[]): string {
  let out = text;
  for (const e of [...edits].sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}
