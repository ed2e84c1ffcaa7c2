// Go's text/template language, the part `melange query` users write, over plain data (strings, lists and
// mappings, as a recipe reads): see src/config/query.ts for what is supported and where it differs from Go.
import { didYouMean } from './suggest.ts';
import { UsageError } from '../errors.ts';

/** What a template runs over. */
export type TemplateData = string | TemplateData[] | { [key: string]: TemplateData };

/** A field the recipe does not set; printing it is the error it carries. */
class Missing {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}
type Value = string | number | boolean | null | Missing | Value[] | { [key: string]: Value };

// ---- lexing: text and actions -------------------------------------------------------------------------

interface Action {
  body: string;
  /** 1-based column of the `{{` in the template. */
  column: number;
}
type Piece = { text: string } | { action: Action };

function split(template: string): Piece[] {
  const pieces: Piece[] = [];
  let at = 0;
  while (at < template.length) {
    const open = template.indexOf('{{', at);
    if (open < 0) {
      pieces.push({ text: template.slice(at) });
      break;
    }
    let text = template.slice(at, open);
    let start = open + 2;
    if (/^-[ \t\r\n]/.test(template.slice(start, start + 2))) {
      text = text.replace(/[ \t\r\n]+$/, '');
      start += 1;
    }
    pieces.push({ text });
    const close = findClose(template, start);
    if (close < 0) throw new UsageError(`query: "{{" at column ${open + 1} has no closing "}}"`);
    let end = close;
    let next = close + 2;
    if (/[ \t\r\n]-$/.test(template.slice(close - 2, close))) {
      end = close - 1;
      next = close + 2;
      while (next < template.length && /[ \t\r\n]/.test(template[next]!)) next++;
    }
    pieces.push({ action: { body: template.slice(start, end).trim(), column: open + 1 } });
    at = next;
  }
  return pieces;
}

function findClose(template: string, from: number): number {
  let quote = '';
  for (let i = from; i < template.length - 1; i++) {
    const c = template[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === '`') quote = c;
    else if (c === '/' && template[i + 1] === '*') {
      const endComment = template.indexOf('*/', i + 2);
      if (endComment < 0) return -1;
      i = endComment + 1;
    } else if (c === '}' && template[i + 1] === '}') return i;
  }
  return -1;
}

// ---- parsing: tokens → pipelines → tree ---------------------------------------------------------------

type Token =
  | { t: 'field'; path: string[]; glued: boolean }
  | { t: 'var'; name: string; path: string[] }
  | { t: 'ident'; name: string }
  | { t: 'lit'; value: Value }
  | { t: 'punct'; p: '|' | '(' | ')' | ':=' | '=' | ',' };

function tokenize(body: string, column: number): Token[] {
  const tokens: Token[] = [];
  const bad = (what: string): never => {
    throw new UsageError(`query: ${what} at column ${column}`);
  };
  let i = 0;
  const seg = /^(?:\.[A-Za-z0-9_-]+)+/;
  while (i < body.length) {
    const rest = body.slice(i);
    const ws = /^\s+/.exec(rest);
    if (ws) {
      i += ws[0].length;
      continue;
    }
    const glued = tokens.length > 0 && tokens[tokens.length - 1]!.t === 'punct' && (tokens[tokens.length - 1] as { p: string }).p === ')' && body[i - 1] === ')';
    let m: RegExpExecArray | null;
    if ((m = seg.exec(rest))) {
      tokens.push({ t: 'field', path: m[0].slice(1).split('.'), glued });
    } else if (rest[0] === '.') {
      m = /^\./.exec(rest)!;
      tokens.push({ t: 'field', path: [], glued });
    } else if ((m = /^\$[A-Za-z0-9_]*((?:\.[A-Za-z0-9_-]+)*)/.exec(rest))) {
      const name = m[0].slice(0, m[0].length - m[1]!.length);
      tokens.push({ t: 'var', name, path: m[1] ? m[1].slice(1).split('.') : [] });
    } else if ((m = /^"(?:[^"\\]|\\.)*"/.exec(rest))) {
      try {
        tokens.push({ t: 'lit', value: JSON.parse(m[0]) as string });
      } catch {
        bad(`invalid string ${m[0]}`);
      }
    } else if ((m = /^`[^`]*`/.exec(rest))) {
      tokens.push({ t: 'lit', value: m[0].slice(1, -1) });
    } else if ((m = /^-?\d+(\.\d+)?/.exec(rest))) {
      tokens.push({ t: 'lit', value: Number(m[0]) });
    } else if ((m = /^(:=|[|(),=])/.exec(rest))) {
      tokens.push({ t: 'punct', p: m[0] as '|' });
    } else if ((m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest))) {
      const word = m[0];
      if (word === 'true' || word === 'false') tokens.push({ t: 'lit', value: word === 'true' });
      else if (word === 'nil') tokens.push({ t: 'lit', value: null });
      else tokens.push({ t: 'ident', name: word });
    } else if (rest[0] === '"') {
      bad(`invalid string ${rest}`);
    } else {
      bad(`unexpected "${rest[0]}"`);
    }
    i += m![0].length;
  }
  return tokens;
}

type Operand = { kind: 'field'; base?: Operand; path: string[] } | { kind: 'var'; name: string; path: string[] } | { kind: 'lit'; value: Value } | { kind: 'sub'; pipe: Pipeline };
interface Command {
  fn?: string;
  args: Operand[];
}
interface Pipeline {
  decl: string[];
  assign: boolean;
  cmds: Command[];
  column: number;
}

function parsePipeline(tokens: Token[], column: number): Pipeline {
  let pos = 0;
  const decl: string[] = [];
  let assign = false;
  // `$x :=`, `$i, $v :=` or `$x =`
  const look = tokens.findIndex((t) => t.t === 'punct' && (t.p === ':=' || t.p === '='));
  if (look > 0 && tokens.slice(0, look).every((t) => t.t === 'var' || (t.t === 'punct' && t.p === ','))) {
    for (const t of tokens.slice(0, look)) if (t.t === 'var') decl.push(t.name);
    assign = (tokens[look] as { p: string }).p === '=';
    pos = look + 1;
  }
  const parseCmds = (stopAtParen: boolean): Command[] => {
    const cmds: Command[] = [];
    let cmd: Command = { args: [] };
    while (pos < tokens.length) {
      const t = tokens[pos]!;
      if (t.t === 'punct' && t.p === ')') {
        if (!stopAtParen) throw new UsageError(`query: unexpected ")" at column ${column}`);
        break;
      }
      pos++;
      if (t.t === 'punct' && t.p === '|') {
        if (!cmd.fn && cmd.args.length === 0) throw new UsageError(`query: missing command before "|" at column ${column}`);
        cmds.push(cmd);
        cmd = { args: [] };
      } else if (t.t === 'punct' && t.p === '(') {
        const inner = parseCmds(true);
        if (tokens[pos]?.t !== 'punct') throw new UsageError(`query: unclosed "(" at column ${column}`);
        pos++;
        let operand: Operand = { kind: 'sub', pipe: { decl: [], assign: false, cmds: inner, column } };
        while (tokens[pos]?.t === 'field' && (tokens[pos] as { glued: boolean }).glued) {
          operand = { kind: 'field', base: operand, path: (tokens[pos] as { path: string[] }).path };
          pos++;
        }
        cmd.args.push(operand);
      } else if (t.t === 'ident') {
        if (cmd.fn || cmd.args.length > 0) throw new UsageError(`query: "${t.name}" must come first in a command, at column ${column}`);
        cmd.fn = t.name;
      } else if (t.t === 'field') cmd.args.push({ kind: 'field', path: t.path });
      else if (t.t === 'var') cmd.args.push({ kind: 'var', name: t.name, path: t.path });
      else if (t.t === 'lit') cmd.args.push({ kind: 'lit', value: t.value });
      else throw new UsageError(`query: unexpected "${t.p}" at column ${column}`);
    }
    if (!cmd.fn && cmd.args.length === 0) throw new UsageError(`query: missing value at column ${column}`);
    cmds.push(cmd);
    return cmds;
  };
  const cmds = parseCmds(false);
  return { decl, assign, cmds, column };
}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipeline }
  | { kind: 'if' | 'with' | 'range'; pipe: Pipeline; then: Node[]; otherwise: Node[] };

function parseTree(pieces: Piece[]): Node[] {
  let pos = 0;
  // Returns the nodes up to an `else`/`end` (left unconsumed for the caller).
  const list = (): Node[] => {
    const nodes: Node[] = [];
    while (pos < pieces.length) {
      const piece = pieces[pos]!;
      if ('text' in piece) {
        if (piece.text) nodes.push({ kind: 'text', text: piece.text });
        pos++;
        continue;
      }
      const { body, column } = piece.action;
      if (body.startsWith('/*')) {
        pos++;
        continue;
      }
      const word = /^(if|with|range|else|end)\b/.exec(body)?.[1];
      if (word === 'else' || word === 'end') return nodes;
      pos++;
      if (word === 'if' || word === 'with' || word === 'range') nodes.push(block(word, body.slice(word.length), column));
      else nodes.push({ kind: 'action', pipe: parsePipeline(tokenize(body, column), column) });
    }
    return nodes;
  };
  const block = (kind: 'if' | 'with' | 'range', rest: string, column: number): Node => {
    const pipe = parsePipeline(tokenize(rest, column), column);
    const then = list();
    let otherwise: Node[] = [];
    const closing = pieces[pos];
    if (!closing || !('action' in closing)) throw new UsageError(`query: {{${kind}}} at column ${column} has no {{end}}`);
    const body = closing.action.body;
    pos++;
    if (body.startsWith('else')) {
      const chained = /^else\s+(if|with)\b/.exec(body);
      if (chained) otherwise = [block(chained[1] as 'if', body.slice(chained[0].length), closing.action.column)];
      else {
        otherwise = list();
        const end = pieces[pos];
        if (!end || !('action' in end) || end.action.body !== 'end') throw new UsageError(`query: {{${kind}}} at column ${column} has no {{end}}`);
        pos++;
      }
    } else if (body !== 'end') throw new UsageError(`query: unexpected {{${body}}} at column ${closing.action.column}`);
    return { kind, pipe, then, otherwise };
  };
  const nodes = list();
  if (pos < pieces.length) {
    const stray = pieces[pos] as { action: Action };
    throw new UsageError(`query: unexpected {{${stray.action.body}}} at column ${stray.action.column}`);
  }
  return nodes;
}

// ---- evaluation ---------------------------------------------------------------------------------------

const normal = (key: string) => key.toLowerCase().replace(/[-_]/g, '');

interface Scope {
  dot: Value;
  vars: Map<string, Value>[];
}

function lookupVar(scope: Scope, name: string, column: number): Value {
  for (let i = scope.vars.length - 1; i >= 0; i--) if (scope.vars[i]!.has(name)) return scope.vars[i]!.get(name)!;
  throw new UsageError(`query: undefined variable "${name}" at column ${column}`);
}

function walk(start: Value, path: string[], prefix: string[]): Value {
  let node = start;
  const walked = [...prefix];
  const shown = (segs: string[]) => (segs.length ? `.${segs.join('.')}` : 'the recipe');
  for (const segment of path) {
    if (node instanceof Missing) return node;
    if (Array.isArray(node)) {
      const item = /^\d+$/.test(segment) ? node[Number(segment)] : undefined;
      if (item === undefined) {
        throw new UsageError(`query: .${[...walked, segment].join('.')}: ${shown(walked)} is a list of ${node.length}; use an index from 0 to ${node.length - 1}`);
      }
      node = item;
    } else if (node !== null && typeof node === 'object' && !(node instanceof Missing)) {
      const obj = node;
      const key = Object.keys(obj).find((k) => normal(k) === normal(segment));
      if (key === undefined) return missingField(obj, [...walked, segment]);
      node = obj[key]!;
    } else {
      throw new UsageError(`query: .${[...walked, segment].join('.')}: ${shown(walked)} is a ${typeof node === 'string' ? 'string' : String(typeof node)}, not a mapping`);
    }
    walked.push(segment);
  }
  return node;
}

function missingField(obj: { [k: string]: Value }, path: string[]): Missing {
  const segment = path[path.length - 1]!;
  const keys = Object.keys(obj);
  const hint = didYouMean(segment, keys);
  return new Missing(`query: .${path.join('.')}: no such field${hint}${hint ? '' : keys.length ? ` (fields here: ${keys.join(', ')})` : ' (nothing is set here)'}`);
}

function truth(v: Value): boolean {
  if (v instanceof Missing || v === null || v === false || v === 0) return false;
  if (typeof v === 'string') return v !== '' && v !== '0' && v !== 'false';
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

function show(v: Value): string {
  if (v instanceof Missing) throw new UsageError(v.message);
  if (v === null) return '<nil>';
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `[${v.map(show).join(' ')}]`;
  return `map[${Object.keys(v).sort().map((k) => `${k}:${show(v[k]!)}`).join(' ')}]`;
}

const numeric = (v: Value): number | undefined =>
  typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : typeof v === 'boolean' ? undefined : undefined;

function compare(a: Value, b: Value): number {
  const na = numeric(a);
  const nb = numeric(b);
  if (na !== undefined && nb !== undefined) return na - nb;
  const sa = a instanceof Missing ? '' : show(a);
  const sb = b instanceof Missing ? '' : show(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

function sprintf(format: string, args: Value[]): string {
  let n = 0;
  return format.replace(/%([-+# 0]*)(\d*)(?:\.(\d+))?([svdqxXft%])/g, (_m, flags: string, width: string, prec: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    const arg = args[n++];
    if (arg === undefined) return `%!${verb}(MISSING)`;
    let out: string;
    const num = numeric(arg);
    if (verb === 'd') out = num !== undefined ? String(Math.trunc(num)) : `%!d(${show(arg)})`;
    else if (verb === 'f') out = num !== undefined ? num.toFixed(prec ? Number(prec) : 6) : `%!f(${show(arg)})`;
    else if (verb === 'q') out = JSON.stringify(show(arg));
    else if (verb === 'x' || verb === 'X') {
      out = num !== undefined && typeof arg === 'number' ? num.toString(16) : Buffer.from(show(arg)).toString('hex');
      if (verb === 'X') out = out.toUpperCase();
    } else out = show(arg);
    const w = Number(width || 0);
    return flags.includes('-') ? out.padEnd(w) : out.padStart(w, flags.includes('0') && verb !== 's' ? '0' : ' ');
  }) + (n < args.length ? `%!(EXTRA ${args.slice(n).map(show).join(', ')})` : '');
}

type Fn = (args: Value[], column: number) => Value;
const arity = (name: string, args: Value[], min: number, column: number) => {
  if (args.length < min) throw new UsageError(`query: ${name} needs at least ${min} argument${min === 1 ? '' : 's'}, at column ${column}`);
};
const FUNCTIONS: Record<string, Fn> = {
  len: (a, c) => {
    arity('len', a, 1, c);
    const v = a[0]!;
    if (v instanceof Missing || v === null) return 0;
    if (typeof v === 'string' || Array.isArray(v)) return v.length;
    if (typeof v === 'object') return Object.keys(v).length;
    throw new UsageError(`query: len of ${show(v)} at column ${c}`);
  },
  index: (a, c) => {
    arity('index', a, 1, c);
    let v = a[0]!;
    for (const k of a.slice(1)) {
      if (Array.isArray(v)) {
        const i = numeric(k);
        if (i === undefined || i < 0 || i >= v.length) throw new UsageError(`query: index ${show(k)} out of range (the list has ${v.length}) at column ${c}`);
        v = v[i]!;
      } else if (v !== null && typeof v === 'object' && !(v instanceof Missing)) {
        const key = show(k);
        const found = key in v ? key : Object.keys(v).find((x) => normal(x) === normal(key));
        // As Go's index on a map: a missing key gives the zero value.
        v = found === undefined ? '' : v[found]!;
      } else if (v instanceof Missing) return '';
      else throw new UsageError(`query: cannot index ${show(v)} at column ${c}`);
    }
    return v;
  },
  slice: (a, c) => {
    arity('slice', a, 1, c);
    const v = a[0]!;
    if (typeof v !== 'string' && !Array.isArray(v)) throw new UsageError(`query: cannot slice ${show(v)} at column ${c}`);
    const [from, to] = a.slice(1).map((x) => numeric(x) ?? 0);
    return v.slice(from ?? 0, to ?? v.length) as Value;
  },
  printf: (a, c) => {
    arity('printf', a, 1, c);
    return sprintf(show(a[0]!), a.slice(1));
  },
  print: (a) => a.map((v, i) => (i > 0 && typeof v !== 'string' && typeof a[i - 1] !== 'string' ? ' ' : '') + show(v)).join(''),
  println: (a) => `${a.map(show).join(' ')}\n`,
  urlquery: (a) => encodeURIComponent(a.map(show).join('')).replace(/%20/g, '+'),
  eq: (a, c) => {
    arity('eq', a, 2, c);
    return a.slice(1).some((b) => compare(a[0]!, b) === 0);
  },
  ne: (a, c) => (arity('ne', a, 2, c), compare(a[0]!, a[1]!) !== 0),
  lt: (a, c) => (arity('lt', a, 2, c), compare(a[0]!, a[1]!) < 0),
  le: (a, c) => (arity('le', a, 2, c), compare(a[0]!, a[1]!) <= 0),
  gt: (a, c) => (arity('gt', a, 2, c), compare(a[0]!, a[1]!) > 0),
  ge: (a, c) => (arity('ge', a, 2, c), compare(a[0]!, a[1]!) >= 0),
  and: (a, c) => (arity('and', a, 1, c), a.find((v) => !truth(v)) ?? a[a.length - 1]!),
  or: (a, c) => (arity('or', a, 1, c), a.find((v) => truth(v)) ?? a[a.length - 1]!),
  not: (a, c) => (arity('not', a, 1, c), !truth(a[0]!)),
};

function operand(op: Operand, scope: Scope, column: number): Value {
  if (op.kind === 'lit') return op.value;
  if (op.kind === 'sub') return pipeline(op.pipe, scope);
  if (op.kind === 'var') return walk(lookupVar(scope, op.name, column), op.path, [op.name]);
  if (op.base) return walk(operand(op.base, scope, column), op.path, ['(…)']);
  return walk(scope.dot, op.path, []);
}

function pipeline(pipe: Pipeline, scope: Scope): Value {
  let piped: Value | undefined;
  for (const cmd of pipe.cmds) {
    const args = cmd.args.map((a) => operand(a, scope, pipe.column));
    if (piped !== undefined) args.push(piped);
    if (cmd.fn) {
      const fn = FUNCTIONS[cmd.fn];
      if (!fn) throw new UsageError(`query: function "${cmd.fn}" not defined at column ${pipe.column}${didYouMean(cmd.fn, Object.keys(FUNCTIONS))}`);
      piped = fn(args, pipe.column);
    } else {
      if (args.length > 1) throw new UsageError(`query: a value cannot take arguments, at column ${pipe.column}`);
      piped = args[0]!;
    }
  }
  return piped!;
}

function declare(pipe: Pipeline, scope: Scope, value: Value): void {
  if (pipe.assign) {
    for (let i = scope.vars.length - 1; i >= 0; i--) {
      if (scope.vars[i]!.has(pipe.decl[0]!)) {
        scope.vars[i]!.set(pipe.decl[0]!, value);
        return;
      }
    }
    throw new UsageError(`query: undefined variable "${pipe.decl[0]}" at column ${pipe.column}`);
  }
  if (pipe.decl.length > 0) scope.vars[scope.vars.length - 1]!.set(pipe.decl[pipe.decl.length - 1]!, value);
}

function execute(nodes: Node[], scope: Scope): string {
  let out = '';
  for (const node of nodes) {
    if (node.kind === 'text') out += node.text;
    else if (node.kind === 'action') {
      const v = pipeline(node.pipe, scope);
      if (node.pipe.decl.length > 0) declare(node.pipe, scope, v);
      else out += show(v);
    } else {
      const v = pipeline(node.pipe, scope);
      const inner = (dot: Value, vars: [string, Value][] = []): string =>
        execute(node.then, { dot, vars: [...scope.vars, new Map(vars)] });
      if (node.kind === 'if' || node.kind === 'with') {
        if (!truth(v)) out += execute(node.otherwise, { dot: scope.dot, vars: [...scope.vars, new Map()] });
        else {
          const decl: [string, Value][] = node.pipe.decl.length > 0 ? [[node.pipe.decl[0]!, v]] : [];
          out += inner(node.kind === 'with' ? v : scope.dot, decl);
        }
      } else {
        const items: [Value, Value][] = Array.isArray(v)
          ? v.map((x, i) => [i, x])
          : v !== null && typeof v === 'object' && !(v instanceof Missing)
            ? Object.keys(v).sort().map((k) => [k, v[k]!])
            : typeof v === 'number'
              ? Array.from({ length: v }, (_x, i) => [i, i])
              : [];
        if (!(v instanceof Missing) && v !== null && items.length === 0 && typeof v !== 'object' && typeof v !== 'number') {
          throw new UsageError(`query: range over ${show(v)}, which is not a list or a mapping, at column ${node.pipe.column}`);
        }
        if (items.length === 0) out += execute(node.otherwise, { dot: scope.dot, vars: [...scope.vars, new Map()] });
        for (const [k, x] of items) {
          const d = node.pipe.decl;
          const vars: [string, Value][] = d.length === 2 ? [[d[0]!, k], [d[1]!, x]] : d.length === 1 ? [[d[0]!, x]] : [];
          out += inner(x, vars);
        }
      }
    }
  }
  return out;
}

/** Expand `template` over `data`; throws UsageError for bad syntax and missing fields. */
export function renderTemplate(template: string, data: TemplateData): string {
  const tree = parseTree(split(template));
  return execute(tree, { dot: data, vars: [new Map([['$', data]])] });
}
