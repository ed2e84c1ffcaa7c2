// The expression language of `if:` conditions and of `${{ … }}` substitutions, as melange's recursive-descent
// parser reads it, with the forms real recipes add on top:
//
//   expr    := unary (('&&' | '||') unary)*    evaluated left to right, without precedence (melange's rule)
//   unary   := '!' unary | compare
//   compare := primary (('==' | '!=') primary)?
//   primary := '(' expr ')' | '…' | "…" | ${{ expr }} | name    (a bare name only inside ${{ }})
//
// A value is a string or a boolean (from a comparison or `!`). `a && b` is b when a is true, else a;
// `a || b` is a when a is true, else b, so `${{range.key == "64" && "--enable-64" || ""}}` yields
// "--enable-64" or "". A string is true unless it is empty or "false". An `if:` must come out as a
// boolean: a bare string there is an error, as in melange. Substitutions are expanded inside quoted
// strings too; \\ \' \" \n \t are escapes inside quotes. Every syntax error names the 1-based column.

export class ConditionSyntaxError extends Error {
  override name = 'ConditionSyntaxError';
  readonly column: number;
  constructor(message: string, column: number) {
    super(`syntax error at column ${column}: ${message}`);
    this.column = column;
  }
}

/** Looks a substitution name up; returns undefined for an unknown name (the caller reports it). */
export type ConditionLookup = (name: string) => string | undefined;

type Value = string | boolean;

const SUBST_OPEN = '${{';
const NAME_CHAR = /[A-Za-z0-9._-]/;

function truthy(v: Value): boolean {
  return typeof v === 'boolean' ? v : v !== '' && v !== 'false';
}

class Parser {
  private pos = 0;
  private readonly text: string;
  private readonly lookup: ConditionLookup;
  /** Inside `${{ }}` a bare name is a substitution; in an `if:` values are quoted or `${{…}}`. */
  private readonly bareNames: boolean;
  /** Where `text` starts in the expression the user wrote (for columns of nested `${{ }}`). */
  private readonly offset: number;
  private what = 'condition';
  constructor(text: string, lookup: ConditionLookup, bareNames: boolean, offset = 0) {
    this.text = text;
    this.lookup = lookup;
    this.bareNames = bareNames;
    this.offset = offset;
  }

  parse(what: string): Value {
    this.what = what;
    this.skipSpace();
    if (this.pos >= this.text.length) throw this.error(`empty ${what}`);
    const result = this.expr();
    this.skipSpace();
    if (this.pos < this.text.length) {
      throw this.error(
        this.text[this.pos] === ')' ? 'unbalanced ")"' : `expected "&&", "||" or the end of the ${what}, found ${this.describeHere()}`,
      );
    }
    return result;
  }

  private error(message: string, at = this.pos): ConditionSyntaxError {
    return new ConditionSyntaxError(message, this.offset + at + 1);
  }

  private describeHere(): string {
    if (this.pos >= this.text.length) return `the end of the ${this.what}`;
    return JSON.stringify(this.text.slice(this.pos, this.pos + 12).split(/\s/)[0] || this.text[this.pos]);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  private expr(): Value {
    let result = this.unary();
    for (;;) {
      this.skipSpace();
      const op = this.text.slice(this.pos, this.pos + 2);
      if (op !== '&&' && op !== '||') return result;
      this.pos += 2;
      const rhs = this.unary();
      result = op === '&&' ? (truthy(result) ? rhs : result) : truthy(result) ? result : rhs;
    }
  }

  private unary(): Value {
    this.skipSpace();
    if (this.text[this.pos] === '!' && this.text[this.pos + 1] !== '=') {
      this.pos++;
      return !truthy(this.unary());
    }
    return this.compare();
  }

  private compare(): Value {
    this.skipSpace();
    const start = this.pos;
    const lhs = this.primary();
    this.skipSpace();
    const op = this.text.slice(this.pos, this.pos + 2);
    if (op === '==' || op === '!=') {
      this.pos += 2;
      const rhs = this.primary();
      return op === '==' ? String(lhs) === String(rhs) : String(lhs) !== String(rhs);
    }
    if (typeof lhs === 'string' && !this.bareNames && this.text[start] !== '(') {
      throw this.error(
        this.text[this.pos] === '=' ? 'use "==" to compare, not "="' : `expected "==" or "!=", found ${this.describeHere()}`,
      );
    }
    return lhs;
  }

  private primary(): Value {
    this.skipSpace();
    const c = this.text[this.pos];
    const want = this.bareNames ? 'a quoted string, a name or ${{…}}' : 'a quoted string or ${{…}}';
    if (c === undefined) throw this.error(`expected ${want}, found ${this.describeHere()}`);
    if (c === '(') {
      const open = this.pos;
      this.pos++;
      const result = this.expr();
      this.skipSpace();
      if (this.text[this.pos] !== ')') {
        throw this.error(
          this.pos >= this.text.length ? `missing ")" for the "(" at column ${this.offset + open + 1}` : `expected ")", "&&" or "||", found ${this.describeHere()}`,
        );
      }
      this.pos++;
      return result;
    }
    if (c === "'" || c === '"') return this.quoted(c);
    if (this.text.startsWith(SUBST_OPEN, this.pos)) return this.substitution();
    if (this.bareNames && NAME_CHAR.test(c)) {
      const start = this.pos;
      while (this.pos < this.text.length && NAME_CHAR.test(this.text[this.pos]!)) this.pos++;
      return this.lookup(this.text.slice(start, this.pos)) ?? '';
    }
    throw this.error(`expected ${want}, found ${this.describeHere()}`);
  }

  private quoted(quote: string): string {
    const start = this.pos;
    this.pos++;
    let out = '';
    while (this.pos < this.text.length && this.text[this.pos] !== quote) {
      const c = this.text[this.pos]!;
      if (c === '\\' && this.pos + 1 < this.text.length) {
        const next = this.text[this.pos + 1]!;
        out += next === 'n' ? '\n' : next === 't' ? '\t' : next === '\\' || next === "'" || next === '"' ? next : `\\${next}`;
        this.pos += 2;
      } else if (this.text.startsWith(SUBST_OPEN, this.pos)) {
        out += String(this.substitution());
      } else {
        out += c;
        this.pos++;
      }
    }
    if (this.pos >= this.text.length) throw this.error(`unterminated string starting at column ${this.offset + start + 1}`, start);
    this.pos++;
    return out;
  }

  /** `${{ name }}` or `${{ expression }}`; the closing `}}` is the first one outside a quoted string. */
  private substitution(): Value {
    const start = this.pos;
    const end = closingBraces(this.text, start + SUBST_OPEN.length);
    if (end < 0) throw this.error('unterminated "${{"', start);
    const inner = this.text.slice(start + SUBST_OPEN.length, end);
    this.pos = end + 2;
    const name = inner.trim();
    if (/^[A-Za-z0-9._-]+$/.test(name)) return this.lookup(name) ?? '';
    return new Parser(inner, this.lookup, true, this.offset + start + SUBST_OPEN.length).parse('expression');
  }
}

/** Index of the `}}` that closes a `${{` whose content starts at `from`, skipping quoted strings; -1 if none. */
export function closingBraces(text: string, from: number): number {
  let quote: string | undefined;
  for (let i = from; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '}' && text[i + 1] === '}') return i;
  }
  return -1;
}

/** Evaluate an `if:` condition; throws ConditionSyntaxError. Unknown names evaluate as "" after `lookup` saw them. */
export function evaluateCondition(text: string, lookup: ConditionLookup): boolean {
  return truthy(new Parser(text, lookup, false).parse('condition'));
}

/**
 * Evaluate what is inside `${{ … }}` when it is more than a name (`range.key == "64" && "--x" || ""`);
 * a boolean result is written "true" or "false". Throws ConditionSyntaxError.
 */
export function evaluateExpression(text: string, lookup: ConditionLookup): string {
  return String(new Parser(text, lookup, true).parse('expression'));
}
