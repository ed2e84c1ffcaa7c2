// apk's version grammar and ordering, transcribed from apk-tools' version.c (the token-state rewrite used
// by apk-tools 2.14): `digits{.digits}...{letter}{_suffix{digits}}...{~hash}{-r digits}`.
//
// The numeric order of the token kinds is part of the algorithm: a token may only follow a token of a lower
// kind, and when one version runs out first the kinds decide (see compareTokens' tail below).

const TOKEN_INITIAL_DIGIT = 0;
const TOKEN_DIGIT = 1;
const TOKEN_LETTER = 2;
const TOKEN_SUFFIX = 3;
const TOKEN_SUFFIX_NO = 4;
const TOKEN_COMMIT_HASH = 5;
const TOKEN_REVISION_NO = 6;
const TOKEN_END = 7;
const TOKEN_INVALID = 8;

// Pre-release suffixes sort below "no suffix" (SUFFIX_NONE), post-release ones above it.
const SUFFIX_NONE = 5;
const SUFFIX_VALUES: ReadonlyMap<string, number> = new Map([
  ['alpha', 1],
  ['beta', 2],
  ['pre', 3],
  ['rc', 4],
  ['cvs', 6],
  ['svn', 7],
  ['git', 8],
  ['hg', 9],
  ['p', 10],
]);

const UINT64 = 64;

interface TokenState {
  token: number;
  suffix: number;
  number: bigint;
  value: string;
}

/** A cursor over one version string, producing apk's tokens one at a time. */
class VersionTokens {
  private pos = 0;
  readonly state: TokenState = { token: TOKEN_INITIAL_DIGIT, suffix: 0, number: 0n, value: '' };
  private readonly text: string;

  constructor(text: string) {
    this.text = text;
    this.parseDigits();
  }

  private parseDigits(): void {
    const start = this.pos;
    let n = 0n;
    while (this.pos < this.text.length && isDigit(this.text.charCodeAt(this.pos))) {
      // apk accumulates into a uint64_t: overflow wraps, and we wrap identically so orderings agree.
      n = BigInt.asUintN(UINT64, n * 10n + BigInt(this.text.charCodeAt(this.pos) - 48));
      this.pos++;
    }
    this.state.number = n;
    this.state.value = this.text.slice(start, this.pos);
    if (this.state.value.length === 0) this.state.token = TOKEN_INVALID;
  }

  private span(accept: (c: number) => boolean): string {
    const start = this.pos;
    while (this.pos < this.text.length && accept(this.text.charCodeAt(this.pos))) this.pos++;
    return this.text.slice(start, this.pos);
  }

  next(): void {
    const t = this.state;
    if (this.pos >= this.text.length) {
      t.token = TOKEN_END;
      return;
    }
    const c = this.text.charCodeAt(this.pos);
    if (c >= 0x61 && c <= 0x7a) {
      if (t.token > TOKEN_DIGIT) return this.invalid();
      t.value = this.text[this.pos] ?? '';
      t.token = TOKEN_LETTER;
      this.pos++;
      return;
    }
    if (c === 0x2e /* . */ || isDigit(c)) {
      if (c === 0x2e) {
        if (t.token > TOKEN_DIGIT) return this.invalid();
        this.pos++;
      }
      if (t.token === TOKEN_INITIAL_DIGIT || t.token === TOKEN_DIGIT) t.token = TOKEN_DIGIT;
      else if (t.token === TOKEN_SUFFIX) t.token = TOKEN_SUFFIX_NO;
      else return this.invalid();
      this.parseDigits();
      return;
    }
    if (c === 0x5f /* _ */) {
      if (t.token > TOKEN_SUFFIX_NO) return this.invalid();
      this.pos++;
      t.value = this.span((ch) => ch >= 0x61 && ch <= 0x7a);
      t.suffix = SUFFIX_VALUES.get(t.value) ?? 0;
      if (t.suffix === 0) return this.invalid();
      t.token = TOKEN_SUFFIX;
      return;
    }
    if (c === 0x7e /* ~ */) {
      if (t.token >= TOKEN_COMMIT_HASH) return this.invalid();
      this.pos++;
      t.value = this.span(isHexDigit);
      if (t.value.length === 0) return this.invalid();
      t.token = TOKEN_COMMIT_HASH;
      return;
    }
    if (c === 0x2d /* - */) {
      if (t.token >= TOKEN_REVISION_NO) return this.invalid();
      if (this.text.charCodeAt(this.pos + 1) !== 0x72 /* r */) return this.invalid();
      this.pos += 2;
      t.token = TOKEN_REVISION_NO;
      this.parseDigits();
      return;
    }
    this.invalid();
  }

  private invalid(): void {
    this.state.token = TOKEN_INVALID;
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHexDigit(c: number): boolean {
  return isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/** memcmp-then-length ordering (apk_blob_sort); the compared values are ASCII, so code units equal bytes. */
function blobSort(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

function sign(a: bigint | number, b: bigint | number): -1 | 0 | 1 {
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}

function compareTokens(a: TokenState, b: TokenState): -1 | 0 | 1 {
  switch (a.token) {
    case TOKEN_DIGIT:
      // A component with a leading zero compares as a string (Gentoo rule): 1.02 < 1.1 but 1.2 < 1.10.
      if (a.value.startsWith('0') || b.value.startsWith('0')) return sign(blobSort(a.value, b.value), 0);
      return sign(a.number, b.number);
    case TOKEN_INITIAL_DIGIT:
    case TOKEN_SUFFIX_NO:
    case TOKEN_REVISION_NO:
      return sign(a.number, b.number);
    case TOKEN_LETTER:
      return sign(a.value.charCodeAt(0), b.value.charCodeAt(0));
    case TOKEN_SUFFIX:
      return sign(a.suffix, b.suffix);
    default:
      return sign(blobSort(a.value, b.value), 0);
  }
}

function compare(a: string, b: string, fuzzy: boolean): -1 | 0 | 1 {
  const ta = new VersionTokens(a);
  const tb = new VersionTokens(b);
  while (ta.state.token === tb.state.token && ta.state.token < TOKEN_END) {
    const r = compareTokens(ta.state, tb.state);
    if (r !== 0) return r;
    ta.next();
    tb.next();
  }
  const at = ta.state;
  const bt = tb.state;
  if (at.token === bt.token) return 0;
  if (fuzzy && bt.token === TOKEN_END) return 0;
  // Equal so far and one continues: the longer one is newer, unless it continues with a pre-release suffix.
  if (at.token === TOKEN_SUFFIX && at.suffix < SUFFIX_NONE) return -1;
  if (bt.token === TOKEN_SUFFIX && bt.suffix < SUFFIX_NONE) return 1;
  if (at.token > bt.token) return -1;
  if (bt.token > at.token) return 1;
  return 0;
}

/** Whether `version` follows apk's version grammar (as `apk version --check` decides). */
export function isValidApkVersion(version: string): boolean {
  const t = new VersionTokens(version);
  while (t.state.token < TOKEN_END) t.next();
  return t.state.token === TOKEN_END;
}

/** apk's version ordering: negative when a < b, 0 when equal, positive when a > b. */
export function compareApkVersions(a: string, b: string): -1 | 0 | 1 {
  return compare(a, b, false);
}

export type ApkVersionOperator = '=' | '<' | '>' | '<=' | '>=' | '~' | '<~' | '>~';

export const APK_VERSION_OPERATORS: readonly ApkVersionOperator[] = ['<=', '>=', '<~', '>~', '=', '<', '>', '~'];

/**
 * Whether `version` satisfies the dependency constraint `op wanted` (e.g. `>=`, `1.2`). `~` is apk's fuzzy
 * match: `wanted` is a prefix of `version` token-wise (`1.2.3-r1 ~ 1.2` holds, `1.20 ~ 1.2` does not).
 */
export function apkVersionSatisfies(version: string, op: ApkVersionOperator, wanted: string): boolean {
  const fuzzy = op.includes('~');
  const r = compare(version, wanted, fuzzy);
  switch (op) {
    case '=':
    case '~':
      return r === 0;
    case '<':
      return r < 0;
    case '>':
      return r > 0;
    case '<=':
    case '<~':
      return r <= 0;
    case '>=':
    case '>~':
      return r >= 0;
  }
}
