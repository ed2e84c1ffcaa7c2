import { describe, expect, it } from 'vitest';
import { queryRecipe } from '../../src/cli/commands/query.ts';
import { UsageError } from '../../src/errors.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();

const RECIPE = `
package:
  name: hello
  version: 1.10
  target-architecture: [x86_64, aarch64]
  dependencies:
    runtime: [libc, libintl]
  copyright:
    - license: MIT
vars:
  zeros: 00303
subpackages:
  - name: hello-doc
    description: docs
`;

async function query(template: string, text = RECIPE): Promise<string> {
  return queryRecipe(await writeRecipe(await tempDir(), text), template);
}

describe('builder query', () => {
  it('prints fields through {{ .Path }} placeholders, keeping scalars as written', async () => {
    expect(await query('{{.Package.Name}}-{{.Package.Version}}-r{{.Package.Epoch}}')).toBe('hello-1.10-r0');
    expect(await query('{{ .Vars.zeros }}')).toBe('00303');
    expect(await query('{{.package.target-architecture}} / {{.Package.TargetArchitecture}}')).toBe('x86_64 aarch64 / x86_64 aarch64');
    expect(await query('{{.Package.Dependencies.Runtime}}')).toBe('libc libintl');
    expect(await query('{{.Subpackages.0.Name}}: {{.Subpackages.0.Description}}')).toBe('hello-doc: docs');
    expect(await query('{{.Package.Copyright}}')).toBe('[{"license":"MIT"}]');
    expect(await query('{{ "{{" }}literal{{ "}}" }}')).toBe('{{literal}}');
    expect(await query('no placeholders')).toBe('no placeholders');
  });

  it('names missing fields and bad syntax as usage errors', async () => {
    await expect(query('{{.Package.Nmae}}')).rejects.toThrow(new UsageError('query: .Package.Nmae: no such field (did you mean "name"?)'));
    await expect(query('{{.Subpackages.3.Name}}')).rejects.toThrow(/\.Subpackages is a list of 1; use an index from 0 to 0/);
    await expect(query('{{.Package.Name.More}}')).rejects.toThrow(/\.Package\.Name is a string, not a mapping/);
    await expect(query('{{.Package.Name')).rejects.toThrow(/"\{\{" at column 1 has no closing "\}\}"/);
    await expect(query('x {{Package}}')).rejects.toThrow(/expected a field path like \.Package\.Name at column 3, found "Package"/);
  });
});
