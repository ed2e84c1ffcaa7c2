// pkg-config `.pc` files, read the way pkgconf reads them: `name=value` variables, `Key: value` fields,
// `${var}` expansion, `#` comments, backslash-newline continuations; `Requires` lists of
// `module [op version]` separated by commas or spaces.

export interface PcRequirement {
  module: string;
  /** `=`, `<`, `>`, `<=`, `>=` or `!=`, when the requirement carries a version. */
  op?: string;
  version?: string;
}

export interface PcFile {
  name?: string;
  version?: string;
  requires: PcRequirement[];
  requiresPrivate: PcRequirement[];
  /** Problems worth a warning (undefined variables, malformed requirements). */
  problems: string[];
}

const OPERATORS = new Set(['=', '<', '>', '<=', '>=', '!=']);

export function parsePcFile(text: string, pcdir: string): PcFile {
  const vars = new Map<string, string>([['pcfiledir', pcdir]]);
  const fields = new Map<string, string>();
  const problems: string[] = [];
  const expand = (value: string, lineNo: number): string =>
    value.replace(/\$\$|\$\{([^}]*)\}/g, (m, name: string | undefined) => {
      if (m === '$$') return '$';
      const v = vars.get(name ?? '');
      if (v === undefined) {
        problems.push(`line ${lineNo}: undefined variable \${${name ?? ''}}`);
        return '';
      }
      return v;
    });

  const lines = text.replace(/\\\r?\n/g, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = stripComment(raw).trim();
    if (line === '') return;
    const m = /^([A-Za-z0-9_.]+)\s*([:=])\s*(.*)$/.exec(line);
    if (!m) return;
    const [, key = '', sep, value = ''] = m;
    const expanded = expand(value.trim(), i + 1);
    if (sep === '=') vars.set(key, expanded);
    else fields.set(key.toLowerCase(), expanded);
  });

  const pc: PcFile = {
    requires: parseRequires(fields.get('requires') ?? '', 'Requires', problems),
    requiresPrivate: parseRequires(fields.get('requires.private') ?? '', 'Requires.private', problems),
    problems,
  };
  const name = fields.get('name');
  const version = fields.get('version');
  if (name !== undefined) pc.name = name;
  if (version !== undefined) pc.version = version;
  return pc;
}

function stripComment(line: string): string {
  // `#` starts a comment unless escaped as `\#`.
  const m = /(^|[^\\])#/.exec(line);
  return (m ? line.slice(0, m.index + m[1]!.length) : line).replace(/\\#/g, '#');
}

export function parseRequires(text: string, field: string, problems: string[]): PcRequirement[] {
  // Operators may be written without spaces (`glib-2.0>=2.50`): pad them so tokens split cleanly.
  const tokens = text
    .replace(/(<=|>=|!=|=|<|>)/g, ' $1 ')
    .split(/[\s,]+/)
    .filter((t) => t !== '');
  const out: PcRequirement[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const module = tokens[i] as string;
    if (OPERATORS.has(module)) {
      problems.push(`${field}: operator "${module}" without a module`);
      continue;
    }
    const op = tokens[i + 1];
    if (op !== undefined && OPERATORS.has(op)) {
      const version = tokens[i + 2];
      if (version === undefined || OPERATORS.has(version)) {
        problems.push(`${field}: "${module} ${op}" lacks a version`);
        out.push({ module });
        i += 1;
        continue;
      }
      out.push({ module, op, version });
      i += 2;
    } else {
      out.push({ module });
    }
  }
  return out;
}
