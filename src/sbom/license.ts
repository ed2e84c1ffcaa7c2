// SPDX license expressions (SPDX 2.3, Annex D):
//   expression := and-expr ("OR" and-expr)*
//   and-expr   := term ("AND" term)*
//   term       := "(" expression ")" | simple ["WITH" exception-id]
//   simple     := license-id ["+"] | "LicenseRef-"idstring | "DocumentRef-"idstring":LicenseRef-"idstring
// Identifiers match case-insensitively and are normalised to the list's spelling; operators are accepted
// in upper or lower case and written in upper case.
import { EXCEPTION_IDS, LICENSE_IDS } from './license-ids.ts';

const LICENSES = new Map(LICENSE_IDS.map((id) => [id.toLowerCase(), id]));
const EXCEPTIONS = new Map(EXCEPTION_IDS.map((id) => [id.toLowerCase(), id]));

export type LicenseCheck =
  | {
      valid: true;
      /** The expression with canonical identifier spelling and upper-case operators. */
      normalized: string;
      /** Well-formed identifiers that are not in the bundled list (worth a warning, not an error). */
      unknown: string[];
      /** True when the expression has an operator at its top level or anywhere (needs parentheses to combine). */
      compound: boolean;
    }
  | { valid: false; error: string };

type Token = { kind: 'open' | 'close' | 'and' | 'or' | 'with' | 'id'; text: string; at: number };

const IDSTRING = /^[A-Za-z0-9.-]+$/;

function tokenize(text: string): Token[] | string {
  const tokens: Token[] = [];
  const re = /\s*(\(|\)|[^\s()]+)/gy;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(text)) !== null) {
    const word = m[1] as string;
    const at = m.index + m[0].length - word.length;
    last = re.lastIndex;
    if (word === '(') tokens.push({ kind: 'open', text: word, at });
    else if (word === ')') tokens.push({ kind: 'close', text: word, at });
    else if (word === 'AND' || word === 'and') tokens.push({ kind: 'and', text: word, at });
    else if (word === 'OR' || word === 'or') tokens.push({ kind: 'or', text: word, at });
    else if (word === 'WITH' || word === 'with') tokens.push({ kind: 'with', text: word, at });
    else tokens.push({ kind: 'id', text: word, at });
  }
  if (text.slice(last).trim() !== '') return `unexpected text at column ${last + 1}`;
  return tokens;
}

/** Validates one SPDX license expression. */
export function checkLicenseExpression(text: string): LicenseCheck {
  const trimmed = text.trim();
  if (trimmed === '') return { valid: false, error: 'empty license expression' };
  if (trimmed === 'NONE' || trimmed === 'NOASSERTION') return { valid: true, normalized: trimmed, unknown: [], compound: false };
  const tokens = tokenize(trimmed);
  if (typeof tokens === 'string') return { valid: false, error: tokens };
  let pos = 0;
  const unknown: string[] = [];
  let compound = false;

  class ParseError extends Error {}
  const fail = (message: string): never => {
    throw new ParseError(message);
  };
  const peek = (): Token | undefined => tokens[pos];
  const where = (t: Token | undefined): string => (t ? `"${t.text}" at column ${t.at + 1}` : 'end of expression');

  const simple = (): string => {
    const t = peek();
    if (!t || t.kind !== 'id') fail(`expected a license identifier, found ${where(t)}`);
    pos++;
    const word = (t as Token).text;
    const ref = /^(DocumentRef-([A-Za-z0-9.-]+):)?LicenseRef-([A-Za-z0-9.-]+)$/.exec(word);
    if (ref) return word;
    const plus = word.endsWith('+');
    const id = plus ? word.slice(0, -1) : word;
    if (!IDSTRING.test(id) || id === '') fail(`"${word}" is not a license identifier`);
    const known = LICENSES.get(id.toLowerCase());
    if (known === undefined && !unknown.includes(id)) unknown.push(id);
    return `${known ?? id}${plus ? '+' : ''}`;
  };

  const term = (): string => {
    const t = peek();
    if (t?.kind === 'open') {
      pos++;
      const inner = expression();
      if (peek()?.kind !== 'close') fail(`expected ")", found ${where(peek())}`);
      pos++;
      return `(${inner})`;
    }
    const lic = simple();
    if (peek()?.kind === 'with') {
      pos++;
      compound = true;
      const e = peek();
      if (!e || e.kind !== 'id') fail(`expected an exception identifier after WITH, found ${where(e)}`);
      pos++;
      const exc = (e as Token).text;
      if (!IDSTRING.test(exc)) fail(`"${exc}" is not an exception identifier`);
      const known = EXCEPTIONS.get(exc.toLowerCase());
      if (known === undefined && !unknown.includes(exc)) unknown.push(exc);
      return `${lic} WITH ${known ?? exc}`;
    }
    return lic;
  };

  const andExpr = (): string => {
    const parts = [term()];
    while (peek()?.kind === 'and') {
      pos++;
      compound = true;
      parts.push(term());
    }
    return parts.join(' AND ');
  };

  const expression = (): string => {
    const parts = [andExpr()];
    while (peek()?.kind === 'or') {
      pos++;
      compound = true;
      parts.push(andExpr());
    }
    return parts.join(' OR ');
  };

  try {
    const normalized = expression();
    if (pos < tokens.length) fail(`unexpected ${where(peek())}`);
    return { valid: true, normalized, unknown, compound };
  } catch (err) {
    if (err instanceof ParseError) return { valid: false, error: err.message };
    throw err;
  }
}
