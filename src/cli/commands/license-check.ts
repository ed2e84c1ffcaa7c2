// `builder license-check recipe.yaml|DIR`: melange's `license-check`. The licenses found in the sources
// (license files identified by src/sbom/license-detect.ts) against the licenses the recipe's
// `package.copyright` declares. A recipe's sources are fetched as a build fetches them (cache shared with
// `builder build`); downloaded archives have only their license files unpacked, into --workdir.
// --fix rewrites package.copyright to what was found, keeping the rest of the file as it is.
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { execa } from 'execa';
import { isNode } from 'yaml';
import { writeBufferAtomic } from '../../apk/atomic.ts';
import { loadRecipe } from '../../config/load.ts';
import { applyEdits, columnOf, editableYaml, insertLineAfter, mapAt, pairOf, replaceNode, type TextEdit } from '../../config/yaml-edit.ts';
import { BuilderError, UsageError } from '../../errors.ts';
import { hostArch } from '../../pipeline/arch.ts';
import { compileRecipe } from '../../pipeline/compile.ts';
import { type DetectedLicense, detectLicenses, LICENSE_FILE, licenseFamilies } from '../../sbom/license-detect.ts';
import { prepareSources } from '../../sources/prepare.ts';
import { withInterrupt } from '../interrupt.ts';
import { defaultCacheDir } from '../sandbox-options.ts';

export interface LicenseReport {
  detected: DetectedLicense[];
  /** The recipe's copyright licenses (empty when a directory was checked). */
  declared: string[];
  /** Detected licenses the recipe does not declare. */
  undeclared: string[];
  /** Declared licenses no license file was found for. */
  unfound: string[];
  /** A recipe was checked (not a bare directory). */
  recipe: boolean;
}

interface Flags {
  workdir?: string;
  cacheDir: string;
  fix: boolean;
  structured: boolean;
}

/** Unpacks only the license files of a downloaded archive (GNU tar detects the compression itself). */
async function unpackLicenseFiles(archive: string, dest: string, signal?: AbortSignal): Promise<void> {
  await mkdir(dest, { recursive: true });
  const patterns = ['licen[cs]e*', 'copying*', 'copyright*', 'notice*', 'unlicense*', 'mit-license*', 'apache-license*'];
  // Not an archive, or no license file in it: tar fails, and there is simply nothing to scan.
  await execa('tar', ['-xf', archive, '-C', dest, '--no-same-owner', '--no-same-permissions', '--wildcards', '--no-anchored', '--ignore-case', '--', ...patterns], {
    reject: false,
    cancelSignal: signal,
  });
}

export async function checkLicenses(target: string, flags: Flags, signal?: AbortSignal): Promise<LicenseReport> {
  const info = await stat(target).catch(() => undefined);
  if (!info) throw new UsageError(`license-check: ${target}: no such file or directory`);
  if (info.isDirectory()) return compare(await detectLicenses(target), [], false);
  if (target.endsWith('.apk')) throw new UsageError(`license-check: ${target}: give the recipe the package was built from (builder rebuild reads packages)`);
  const loaded = await loadRecipe(target);
  const declared = (loaded.recipe.package?.copyright ?? []).map((c) => c.license ?? '').filter(Boolean);
  const plan = compileRecipe(loaded, { arch: hostArch() });
  const prepared = await prepareSources(plan, { cacheDir: flags.cacheDir, log: (l) => process.stderr.write(`${l}\n`), signal });
  const workdir = flags.workdir ?? (await mkdtemp(join(tmpdir(), 'builder-license-check-')));
  try {
    const detected: DetectedLicense[] = [];
    for (const [i, p] of prepared.entries()) {
      let dir = p.path;
      if (p.source.kind === 'fetch') {
        dir = join(workdir, `source-${i}`);
        await unpackLicenseFiles(p.path, dir, signal);
        const name = p.source.uri.split('/').pop() ?? '';
        if (LICENSE_FILE.test(name)) {
          // A license file downloaded on its own (some recipes fetch it next to the tarball).
          await writeBufferAtomic(join(dir, name), await readFile(p.path), { mode: 0o644, overwrite: true, sync: false });
        }
      }
      const label = p.source.kind === 'git' ? p.source.repository : p.source.uri;
      for (const d of await detectLicenses(dir)) detected.push({ ...d, file: `${label}: ${d.file}` });
    }
    return compare(detected, declared, true);
  } finally {
    if (!flags.workdir) await rm(workdir, { recursive: true, force: true });
  }
}

function compare(detected: DetectedLicense[], declared: string[], recipe: boolean): LicenseReport {
  const found = new Set(detected.flatMap((d) => (d.license ? licenseFamilies(d.license) : [])));
  const wanted = new Set(declared.flatMap(licenseFamilies));
  return {
    detected,
    declared,
    undeclared: [...found].filter((l) => !wanted.has(l)).sort(),
    unfound: [...wanted].filter((l) => !found.has(l)).sort(),
    recipe,
  };
}

/** The recipe with package.copyright replaced by the detected licenses (one entry each, or per directory). */
export function fixedCopyright(text: string, report: LicenseReport, structured: boolean): string {
  const { root } = editableYaml(text);
  const pkg = mapAt(root, 'package');
  if (!pkg) throw new BuilderError('license-check --fix: the recipe has no package mapping');
  const entries = new Map<string, Set<string>>();
  for (const d of report.detected) {
    if (!d.license) continue;
    const file = d.file.replace(/^.*?: /, '');
    const dir = file.includes('/') ? `${file.slice(0, file.lastIndexOf('/'))}/*` : '*';
    const key = structured ? `${d.license}\n${dir}` : d.license;
    entries.set(key, (entries.get(key) ?? new Set()).add(dir));
  }
  if (entries.size === 0) return text;
  const items = [...entries.keys()].map((key) => {
    const license = key.split('\n')[0]!;
    return structured ? `- license: ${license}\n  paths:\n    - "${key.split('\n')[1]}"` : `- license: ${license}`;
  });
  const value = pairOf(pkg, 'copyright')?.value;
  const edits: TextEdit[] = [];
  if (isNode(value) && value.range) {
    const col = columnOf(text, value.range[0]);
    const body = items.join('\n').split('\n').join(`\n${' '.repeat(col)}`);
    const end = text.slice(0, value.range[1]).trimEnd().length;
    edits.push({ ...replaceNode(value, body), end });
  } else {
    const lastKey = pkg.items[pkg.items.length - 1]?.key;
    const last = pkg.items[pkg.items.length - 1]?.value;
    const anchor = isNode(last) ? last : isNode(lastKey) ? lastKey : pkg;
    edits.push(insertLineAfter(text, anchor, `copyright:\n  ${items.join('\n').split('\n').join('\n  ')}`));
  }
  return applyEdits(text, edits);
}

export function registerLicenseCheckCommand(program: Command): void {
  program
    .command('license-check')
    .description("check the licenses found in a recipe's sources (or a directory) against its package.copyright")
    .argument('<file>', 'recipe file, or a source directory')
    .option('--workdir <dir>', 'where downloaded sources are unpacked (default: a temp dir, removed afterwards)')
    .option('--cache-dir <dir>', 'source cache shared with `builder build`', defaultCacheDir())
    .option('--fix', "rewrite the recipe's package.copyright to the licenses found", false)
    .option('--structured', 'with --fix: one copyright entry per license and directory, with its paths', false)
    .addHelpText(
      'after',
      `
License files (LICENSE, COPYING, NOTICE, … at any depth) are identified by the phrases that set each common
license text apart and by SPDX-License-Identifier lines; -only/-or-later and "+" are ignored when comparing.
Exit status 1 when the sources carry a license the recipe does not declare (melange only reports it).`,
    )
    .action(async (file: string, flags: Flags) => {
      await withInterrupt(async (signal) => {
        const report = await checkLicenses(file, flags, signal);
        for (const d of report.detected) console.log(`${d.file}: ${d.license ?? 'unknown license'}`);
        if (report.detected.length === 0) console.log(`${file}: no license files found`);
        if (report.declared.length > 0) console.log(`declared: ${report.declared.join(', ')}`);
        for (const l of report.unfound) console.log(`note: ${l} is declared but no license file for it was found`);
        if (flags.fix && report.undeclared.length > 0) {
          const text = await readFile(file, 'utf8');
          const mode = (await stat(file)).mode & 0o7777;
          await writeBufferAtomic(file, Buffer.from(fixedCopyright(text, report, flags.structured)), { mode, overwrite: true, sync: true });
          console.log(`${file}: package.copyright set to the licenses found`);
          return;
        }
        if (report.undeclared.length > 0 && report.recipe) {
          throw new BuilderError(`${file}: the sources carry ${report.undeclared.join(', ')}, which package.copyright does not declare`);
        }
        if (report.recipe) console.log('license-check: OK');
      });
    });
}
