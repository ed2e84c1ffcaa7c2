// `if:` conditions, as melange evaluates them:
//
//   expr  := term (('&&' | '||') term)*      evaluated left to right, without precedence (melange's rule)
//   term  := '(' expr ')' | value ('==' | '!=') value
//   value := '…' | "…" | ${{ name }}        substitutions are expanded inside quoted strings too;
//                                            \\ \' \" \n \t are escapes inside quotes
//
// Every syntax error names the 1-based column of the expression where it was found.

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

const SUBST_OPEN = '${{';

class Parser {
  private pos = 0;
  private readonly text: string;
  private readonly lookup: ConditionLookup;
  constructor(text: string, lookup: ConditionLookup) {
    this.text = text;
    this.lookup = lookup;
  }

  parse(): boolean {
    this.skipSpace();
    if (this.pos >= this.text.length) throw this.error('empty condition');
    const result = this.expr();
    this.skipSpace();
    if (this.pos < this.text.length) {
      throw this.error(
        this.text[this.pos] === ')'
          ? 'unbalanced ")"'
          : `expected "&&", "||" or the end of the condition, found ${this.describeHere()}`,
      );
    }
    return result;
  }

  private error(message: string, at = this.pos): ConditionSyntaxError {
    return new ConditionSyntaxError(message, at + 1);
  }

  private describeHere(): string {
    if (this.pos >= this.text.length) return 'the end of the condition';
    return JSON.stringify(this.text.slice(this.pos, this.pos + 12).split(/\s/)[0] || this.text[this.pos]);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  private expr(): boolean {
    let result = this.term();
    for (;;) {
      this.skipSpace();
      const op = this.text.slice(this.pos, this.pos + 2);
      if (op !== '&&' && op !== '||') return result;
      this.pos += 2;
      const rhs = this.term();
      result = op === '&&' ? result && rhs : result || rhs;
    }
  }

  private term(): boolean {
    this.skipSpace();
    if (this.text[this.pos] === '(') {
      const open = this.pos;
      this.pos++;
      const result = this.expr();
      this.skipSpace();
      if (this.text[this.pos] !== ')') {
        throw this.error(
          this.pos >= this.text.length
            ? `missing ")" for the "(" at column ${open + 1}`
            : `expected ")", "&&" or "||", found ${this.describeHere()}`,
        );
      }
      this.pos++;
      return result;
    }
    const lhs = this.value();
    this.skipSpace();
    const op = this.text.slice(this.pos, this.pos + 2);
    if (op !== '==' && op !== '!=') {
      throw this.error(
        this.text[this.pos] === '=' ? 'use "==" to compare, not "="' : `expected "==" or "!=", found ${this.describeHere()}`,
      );
    }
    this.pos += 2;
    const rhs = this.value();
    return op === '==' ? lhs === rhs : lhs !== rhs;
  }

  private value(): string {
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === undefined) throw this.error('expected a quoted string or ${{…}}, found the end of the condition');
    if (c === "'" || c === '"') return this.quoted(c);
    if (this.text.startsWith(SUBST_OPEN, this.pos)) return this.substitution();
    throw this.error(`expected a quoted string or \${{…}}, found ${this.describeHere()}`);
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
        out += this.substitution();
      } else {
        out += c;
        this.pos++;
      }
    }
    if (this.pos >= this.text.length) throw this.error(`unterminated string starting at column ${start + 1}`, start);
    this.pos++;
    return out;
  }

  private substitution(): string {
    const start = this.pos;
    const end = this.text.indexOf('}}', start + SUBST_OPEN.length);
    if (end < 0) throw this.error('unterminated "${{"', start);
    const name = this.text.slice(start + SUBST_OPEN.length, end).trim();
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw this.error(`invalid substitution name "${name}"`, start);
    this.pos = end + 2;
    return this.lookup(name) ?? '';
  }
}

/** Evaluate a condition; throws ConditionSyntaxError. Unknown names evaluate as "" after `lookup` saw them. */
export function evaluateCondition(text: string, lookup: ConditionLookup): boolean {
  return new Parser(text, lookup).parse();
}
