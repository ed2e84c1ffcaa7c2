// --env-file: melange's dotenv format, read by builder (never by Node), with file:line errors.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EnvFileError, parseEnvFile, readEnvFiles } from '../../src/cli/env-file.ts';
import { useTempDirs } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

describe('env files', () => {
  it('reads export lines, plain lines, comments, quotes and expansion as godotenv does', () => {
    const text = [
      '# Wolfi build-common.env',
      'export CFLAGS="-O2 -pipe"',
      'PLAIN=value with spaces # trailing comment',
      "SINGLE='$NOT_EXPANDED \\n'",
      'DOUBLE="line1\\nline2 \\"q\\""',
      'REF=${PLAIN}/x and $CFLAGS',
      'COLON: yes',
      'EMPTY=',
      '',
      '   export   SPACED=1',
      'WIN=crlf\r',
    ].join('\n');
    expect(parseEnvFile(text, 'f.env')).toEqual({
      CFLAGS: '-O2 -pipe',
      PLAIN: 'value with spaces',
      SINGLE: '$NOT_EXPANDED \\n',
      DOUBLE: 'line1\nline2 "q"',
      REF: 'value with spaces/x and -O2 -pipe',
      COLON: 'yes',
      EMPTY: '',
      SPACED: '1',
      WIN: 'crlf',
    });
  });

  it('a later file wins and may refer to an earlier one', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a.env'), 'A=1\nB=from-a\n');
    await writeFile(join(dir, 'b.env'), 'export B=from-b\nC=${A}${B}\n');
    expect(await readEnvFiles([join(dir, 'a.env'), join(dir, 'b.env')], {})).toEqual({ A: '1', B: 'from-b', C: '1from-b' });
  });

  it.each([
    ['just words', 'expected NAME=value'],
    ['1BAD=x', '"1BAD" is not a valid variable name'],
    ['Q="open', 'unterminated double-quoted value'],
    ["Q='open", 'unterminated single-quoted value'],
    ['Q="a" b', 'unexpected text after the closing quote: b'],
  ])('malformed line %j → file:line, why, and the line', (line, why) => {
    const err = (() => {
      try {
        parseEnvFile(`OK=1\n${line}\n`, 'conf/x.env');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(EnvFileError);
    expect((err as EnvFileError).message).toBe(`conf/x.env:2: ${why}`);
    expect((err as EnvFileError).details).toEqual([line]);
  });

  it('a missing file is builder\'s own error naming the flag and file', async () => {
    await expect(readEnvFiles(['/nonexistent/build.env'])).rejects.toThrow('--env-file: /nonexistent/build.env: no such file');
  });
});
