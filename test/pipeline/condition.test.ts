import { describe, expect, it } from 'vitest';
import { ConditionSyntaxError, evaluateCondition, evaluateExpression } from '../../src/pipeline/condition.ts';

const names: Record<string, string> = { 'build.arch': 'aarch64', 'range.key': '64', 'options.rustls.enabled': 'true', empty: '' };
const lookup = (name: string) => names[name];
const ev = (text: string) => evaluateCondition(text, lookup);

function syntaxError(text: string): { column: number; message: string } {
  try {
    ev(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConditionSyntaxError);
    return { column: (err as ConditionSyntaxError).column, message: (err as Error).message };
  }
  throw new Error(`expected a syntax error for ${text}`);
}

describe('if conditions', () => {
  it('compares quoted strings and substitutions with == and !=', () => {
    expect(ev(`\${{build.arch}} == 'aarch64'`)).toBe(true);
    expect(ev(`\${{ build.arch }} != "aarch64"`)).toBe(false);
    expect(ev(`"\${{range.key}}" == "64"`)).toBe(true);
    expect(ev(`'x\${{range.key}}y' == 'x64y'`)).toBe(true);
    expect(ev(`\${{options.rustls.enabled}} == 'true'`)).toBe(true);
    expect(ev(`\${{empty}} == ''`)).toBe(true);
    expect(ev(`'a' == "a"`)).toBe(true);
  });

  it('chains && and || left to right, as melange does, with parentheses grouping', () => {
    expect(ev(`'a' == 'a' && 'b' == 'b' && 'a' != 'b'`)).toBe(true);
    expect(ev(`'a' == 'b' || 'c' == 'c'`)).toBe(true);
    expect(ev(`('a' == 'a' && 'b' != 'b') || 'c' == 'c'`)).toBe(true);
    // Without precedence: ('a'=='a' || 'x'=='y') && 'b'=='c' → false (with && binding tighter it would be true).
    expect(ev(`'a' == 'a' || 'x' == 'y' && 'b' == 'c'`)).toBe(false);
    expect(ev(`'a' == 'a' || ('x' == 'y' && 'b' == 'c')`)).toBe(true);
    expect(ev(`(('a' == 'a'))`)).toBe(true);
  });

  it('understands escapes inside quotes', () => {
    expect(ev(`'it\\'s' == "it's"`)).toBe(true);
    expect(ev(`"a\\"b" == 'a"b'`)).toBe(true);
    expect(ev(`"a\\\\b" == 'a\\\\b'`)).toBe(true);
    expect(ev(`"x\\ny" != 'x y'`)).toBe(true);
  });

  it('passes unknown names to the lookup, which reports them, and compares them as empty', () => {
    const seen: string[] = [];
    expect(evaluateCondition(`\${{nope}} == ''`, (n) => (seen.push(n), undefined))).toBe(true);
    expect(seen).toEqual(['nope']);
  });

  it('reports the column of every syntax error', () => {
    expect(syntaxError('')).toEqual({ column: 1, message: 'syntax error at column 1: empty condition' });
    expect(syntaxError(`'a' = 'a'`)).toMatchObject({ column: 5, message: expect.stringContaining('use "==" to compare') });
    expect(syntaxError(`'a' == b`)).toMatchObject({ column: 8, message: expect.stringContaining('found "b"') });
    expect(syntaxError(`'a' == 'a' 'b'`)).toMatchObject({ column: 12, message: expect.stringContaining('expected "&&", "||"') });
    expect(syntaxError(`'a' == 'a' & 'b' == 'b'`)).toMatchObject({ column: 12 });
    expect(syntaxError(`('a' == 'a'`)).toMatchObject({ column: 12, message: expect.stringContaining('missing ")" for the "(" at column 1') });
    expect(syntaxError(`'a' == 'a')`)).toMatchObject({ column: 11, message: expect.stringContaining('unbalanced ")"') });
    expect(syntaxError(`'a == 'a'`)).toMatchObject({ column: 8, message: expect.stringContaining('expected "==" or "!=", found "a\'"') });
    expect(syntaxError(`'a' == 'a`)).toMatchObject({ column: 8, message: expect.stringContaining('unterminated string starting at column 8') });
    expect(syntaxError(`\${{build.arch == 'x'`)).toMatchObject({ column: 1, message: expect.stringContaining('unterminated "${{"') });
    expect(syntaxError(`\${{ bad name }} == 'x'`)).toMatchObject({ column: 9, message: expect.stringContaining('expected "&&", "||" or the end of the expression, found "name"') });
    expect(syntaxError(`\${{build.arch}}`)).toMatchObject({ column: 16, message: expect.stringContaining('expected "==" or "!="') });
    expect(syntaxError(`!`)).toMatchObject({ column: 2 });
    expect(syntaxError(`\${{ range.key == }} == 'x'`)).toMatchObject({ column: 18, message: expect.stringContaining('expected a quoted string, a name or ${{…}}') });
    expect(syntaxError(`'a' == 'a' &&`)).toMatchObject({ column: 14, message: expect.stringContaining('found the end of the condition') });
  });

  it('negates with !, binding to the comparison or group that follows', () => {
    expect(ev(`!(\${{build.arch}} == 'x86_64')`)).toBe(true);
    expect(ev(`!\${{build.arch}} == 'aarch64'`)).toBe(false);
    expect(ev(`!!('a' == 'a')`)).toBe(true);
    expect(ev(`! ('a' == 'b') && 'c' != 'd'`)).toBe(true);
    expect(ev(`'a' != 'b'`)).toBe(true);
  });

  it('evaluates expressions inside ${{ }}, in conditions too', () => {
    expect(ev(`\${{ build.arch == "aarch64" }}`)).toBe(true);
    expect(ev(`\${{ build.arch != "aarch64" }} || \${{range.key == '64'}}`)).toBe(true);
    expect(ev(`\${{ !(range.key == "64") }}`)).toBe(false);
  });
});

describe('value-producing expressions', () => {
  const value = (text: string) => evaluateExpression(text, lookup);
  it('yields the chosen operand: a && b || c', () => {
    expect(value(`range.key == "64" && "--enable-64" || ""`)).toBe('--enable-64');
    expect(value(`range.key == "32" && "--enable-64" || ""`)).toBe('');
    expect(value(`build.arch == 'x86_64' && 'amd64' || build.arch`)).toBe('aarch64');
    expect(value(`empty || 'fallback'`)).toBe('fallback');
    expect(value(`range.key`)).toBe('64');
    expect(value(`"x-\${{range.key}}"`)).toBe('x-64');
  });
  it('writes booleans as true and false', () => {
    expect(value(`range.key == "64"`)).toBe('true');
    expect(value(`!(range.key == "64")`)).toBe('false');
    expect(value(`options.rustls.enabled && 'yes'`)).toBe('yes');
  });
  it('reports unknown names through the lookup', () => {
    const seen: string[] = [];
    expect(evaluateExpression(`nope == "" && "a" || "b"`, (n) => (seen.push(n), undefined))).toBe('a');
    expect(seen).toEqual(['nope']);
  });
});
