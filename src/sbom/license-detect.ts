// Which licenses a source tree carries: its license files (LICENSE, COPYING, NOTICE, … at any depth)
// identified by the phrases that set each common license's text apart, and `SPDX-License-Identifier:` lines
// in them. This is a fingerprint match, not melange's statistical classifier: it names the license families
// real projects ship, and says "unknown" for a license file it cannot place rather than guessing.
import { open, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';

export interface DetectedLicense {
  /** Path of the license file, relative to the scanned root. */
  file: string;
  /** SPDX identifier, or undefined when the text matched no fingerprint. */
  license?: string;
}

/** Names of license files, as scanners (and melange) look for them. */
export const LICENSE_FILE = /^(licen[cs]e|copying|copyright|notice|unlicense|mit-license|apache-license)([-._].*)?$/i;

/** Most specific first: the LGPL's text mentions the GPL, the AGPL's both. */
const FINGERPRINTS: { id: string; all: string[]; none?: string[] }[] = [
  { id: 'AGPL-3.0', all: ['gnu affero general public license'] },
  { id: 'LGPL-3.0', all: ['gnu lesser general public license', 'version 3'] },
  { id: 'LGPL-2.1', all: ['gnu lesser general public license', 'version 2.1'] },
  { id: 'LGPL-2.0', all: ['gnu library general public license'] },
  { id: 'GPL-3.0', all: ['gnu general public license', 'version 3, 29 june 2007'] },
  { id: 'GPL-2.0', all: ['gnu general public license', 'version 2, june 1991'] },
  { id: 'Apache-2.0', all: ['apache license', 'version 2.0'] },
  { id: 'MPL-2.0', all: ['mozilla public license', '2.0'] },
  { id: 'EPL-2.0', all: ['eclipse public license - v 2.0'] },
  { id: 'BSL-1.0', all: ['boost software license - version 1.0'] },
  { id: 'Unlicense', all: ['this is free and unencumbered software released into the public domain'] },
  { id: 'CC0-1.0', all: ['cc0 1.0 universal'] },
  { id: 'Zlib', all: ["provided 'as-is', without any express or implied warranty", 'altered source versions must be plainly marked'] },
  { id: 'BSD-3-Clause', all: ['redistribution and use in source and binary forms', 'neither the name of'] },
  { id: 'BSD-3-Clause', all: ['redistribution and use in source and binary forms', 'may be used to endorse or promote products'] },
  { id: 'BSD-2-Clause', all: ['redistribution and use in source and binary forms'] },
  { id: 'ISC', all: ['permission to use, copy, modify, and', 'for any purpose with or without fee is hereby granted'] },
  { id: 'MIT', all: ['permission is hereby granted, free of charge, to any person obtaining a copy'] },
];

const MAX_BYTES = 256 * 1024;

/** Identifies one license text (or undefined). */
export function identifyLicense(text: string): string | undefined {
  const spdx = /SPDX-License-Identifier:\s*([^\s*]+(?:\s+(?:AND|OR|WITH)\s+[^\s*]+)*)/.exec(text);
  if (spdx) return spdx[1];
  const normal = text.toLowerCase().replace(/[\s#*/]+/g, ' ');
  return FINGERPRINTS.find((f) => f.all.every((p) => normal.includes(p)) && !(f.none ?? []).some((p) => normal.includes(p)))?.id;
}

/** Every license file under `root` (no symlinks followed, `.git` skipped), identified. */
export async function detectLicenses(root: string): Promise<DetectedLicense[]> {
  const found: DetectedLicense[] = [];
  const walk = async (dir: string) => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const path = join(dir, e.name);
      if (e.isDirectory() && e.name !== '.git') await walk(path);
      else if (e.isFile() && LICENSE_FILE.test(e.name)) {
        const license = identifyLicense(await readHead(path));
        found.push({ file: relative(root, path), ...(license ? { license } : {}) });
      }
    }
  };
  await walk(root);
  return found;
}

async function readHead(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(MAX_BYTES);
    const { bytesRead } = await fh.read(buf, 0, MAX_BYTES, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

/** The identifiers of a license expression, without operators, `+` or -only/-or-later, for comparing. */
export function licenseFamilies(expression: string): string[] {
  const words = expression.split(/[\s()]+/).filter(Boolean);
  // The word after WITH is an exception, not a license.
  return words
    .filter((w, i) => !/^(AND|OR|WITH)$/i.test(w) && !/^WITH$/i.test(words[i - 1] ?? ''))
    .map((w) => w.replace(/\+$/, '').replace(/-(only|or-later)$/, ''));
}
