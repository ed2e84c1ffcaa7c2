// The command-line forms melange's pflag accepts: --flag=BOOL, comma lists, Go durations.
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { collectList, normalizeBooleanFlags, parseDuration } from '../../src/cli/options.ts';

describe('melange command-line forms', () => {
  const cmd = new Command('x').option('--rm').option('--no-rm').option('--debug').option('--out-dir <dir>').option('--generate-index', '', true).option('--no-generate-index');

  it('rewrites --bool=VALUE of boolean options only, and stops at --', () => {
    expect(normalizeBooleanFlags(cmd, ['--rm=false', '--debug=true', '--generate-index=0', '--out-dir=false', '--', '--rm=false'])).toEqual([
      '--no-rm', '--debug', '--no-generate-index', '--out-dir=false', '--', '--rm=false',
    ]);
    expect(() => normalizeBooleanFlags(cmd, ['--rm=maybe'])).toThrow('--rm: "maybe" is not a boolean (true or false)');
  });

  it('splits comma-separated list values and accumulates repeats', () => {
    expect(collectList('c', collectList('a,b', []))).toEqual(['a', 'b', 'c']);
    expect(collectList('a,,b,', [])).toEqual(['a', 'b']);
  });

  it('reads Go durations and plain seconds', () => {
    expect(parseDuration('--timeout', '90s')).toBe(90);
    expect(parseDuration('--timeout', '1h30m')).toBe(5400);
    expect(parseDuration('--timeout', '1.5m')).toBe(90);
    expect(parseDuration('--timeout', '250ms')).toBe(0.25);
    expect(parseDuration('--timeout', '12')).toBe(12);
    expect(() => parseDuration('--timeout', '5 minutes')).toThrow('--timeout: "5 minutes" is not a duration');
    expect(() => parseDuration('--timeout', '')).toThrow('not a duration');
  });
});
