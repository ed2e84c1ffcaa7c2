import { describe, expect, it } from 'vitest';
import { apkVersionSatisfies, compareApkVersions, isValidApkVersion } from '../../src/apk/pkginfo.ts';

// Each row: a, expected relation, b. Many come from the orderings apk-tools' own version tests exercise.
const ORDER: [string, '<' | '=' | '>', string][] = [
  ['1.0', '<', '1.0.1'],
  ['1.0.1', '<', '1.1'],
  ['1.0', '<', '1.1'],
  ['1.9', '<', '1.10'],
  ['1.10', '>', '1.9'],
  ['2', '>', '1.99.99'],
  ['1.0_rc1', '<', '1.0'],
  ['1.0', '<', '1.0_p1'],
  ['1.0_rc1', '<', '1.0_p1'],
  ['1.0_alpha', '<', '1.0_beta'],
  ['1.0_beta', '<', '1.0_pre'],
  ['1.0_pre', '<', '1.0_rc'],
  ['1.0_rc', '<', '1.0'],
  ['1.0', '<', '1.0_cvs'],
  ['1.0_cvs', '<', '1.0_svn'],
  ['1.0_svn', '<', '1.0_git'],
  ['1.0_git', '<', '1.0_hg'],
  ['1.0_hg', '<', '1.0_p'],
  ['1.0_alpha1', '<', '1.0_alpha2'],
  ['1.0_alpha9', '<', '1.0_alpha10'],
  ['1.0_p9', '<', '1.0_p10'],
  ['0.1.0_alpha_pre2', '<', '0.1.0_alpha'],
  ['1.0a', '>', '1.0'],
  ['1.0a', '<', '1.0b'],
  ['1.0z', '<', '1.0.1'],
  ['1.0-r1', '<', '1.0-r2'],
  ['1.0-r9', '<', '1.0-r10'],
  ['1.0', '<', '1.0-r1'],
  ['1.0-r0', '>', '1.0'],
  ['1.0_p1-r0', '>', '1.0-r5'],
  ['1.0-r0', '=', '1.0-r0'],
  ['2.16.1-r3', '=', '2.16.1-r3'],
  // A component with a leading zero compares as a string, not a number.
  ['1.02', '<', '1.1'],
  ['1.2.07.8', '<', '1.2.12.04'],
  ['8.2.0015', '<', '8.2.002'],
  ['1.001', '<', '1.01'],
  // ...but the first component is always numeric.
  ['006', '>', '1.0.0'],
  ['021109-r3', '>', '3.0.0-r2'],
  ['20050718-r1', '<', '20050718-r2'],
  ['1.0.0_pre20191002222144-r0', '<', '1.0.0_pre20210530193627-r0'],
  ['1.0~abc', '<', '1.0~abd'],
  ['1.0~abc-r1', '>', '1.0~abc-r0'],
  ['1.3_pre1-r1', '<', '1.3.2'],
];

function rel(n: number): '<' | '=' | '>' {
  return n < 0 ? '<' : n > 0 ? '>' : '=';
}

describe('compareApkVersions', () => {
  it.each(ORDER)('%s %s %s', (a, expected, b) => {
    expect(rel(compareApkVersions(a, b))).toBe(expected);
    // The ordering is antisymmetric.
    const mirrored = expected === '<' ? '>' : expected === '>' ? '<' : '=';
    expect(rel(compareApkVersions(b, a))).toBe(mirrored);
  });

  it('sorts a shuffled list into apk order', () => {
    const sorted = ['1.0_alpha', '1.0_beta2', '1.0_rc1', '1.0', '1.0-r1', '1.0_p1', '1.0a', '1.0.1', '1.1_rc1', '1.1', '1.10'];
    const shuffled = [...sorted].reverse();
    shuffled.splice(3, 0, ...shuffled.splice(7, 2));
    expect([...shuffled].sort(compareApkVersions)).toEqual(sorted);
  });
});

describe('isValidApkVersion', () => {
  it.each([
    '1',
    '1.0',
    '1.2.3-r0',
    '1.2.3a',
    '1.2.3_rc1',
    '1.2.3_alpha_pre2',
    '1.2.3_p20230101-r12',
    '20240101',
    '1.0~a1b2c3-r0',
    '1.0_git',
  ])('accepts %s', (v) => {
    expect(isValidApkVersion(v)).toBe(true);
  });

  it.each([
    '',
    'v1.0',
    '1.0-1',
    '1.0-r',
    '1.0-r1-r2',
    '1..0',
    '1.0.',
    '.1',
    '1.0_foo',
    '1.0_',
    '1.0ab',
    '1.0a1',
    '1.0A',
    '1.0 ',
    '1.0-r1_p1',
    '1.0~',
    '1.0~xyz',
    '1.0-r1~ab',
  ])('rejects %j', (v) => {
    expect(isValidApkVersion(v)).toBe(false);
  });
});

describe('apkVersionSatisfies', () => {
  it.each([
    ['1.2.3-r1', '>=', '1.2', true],
    ['1.2.3-r1', '<', '1.2', false],
    ['1.2', '<', '1.2.1', true],
    ['1.2-r0', '=', '1.2-r0', true],
    ['1.2-r1', '=', '1.2-r0', false],
    ['1.2.3-r1', '~', '1.2', true],
    ['1.2.3-r1', '~', '1.2.3', true],
    ['1.20', '~', '1.2', false],
    ['1.3', '~', '1.2', false],
    ['1.2_rc1', '~', '1.2', true],
    ['1.2.9', '<~', '1.2', true],
    ['1.3', '<~', '1.2', false],
    ['1.1', '>~', '1.2', false],
  ] as const)('%s %s %s is %s', (version, op, wanted, expected) => {
    expect(apkVersionSatisfies(version, op, wanted)).toBe(expected);
  });
});
