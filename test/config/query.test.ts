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
    expect(await query('{{.package.target-architecture}} / {{.Package.TargetArchitecture}}')).toBe('[x86_64 aarch64] / [x86_64 aarch64]');
    expect(await query('{{.Package.Dependencies.Runtime}}')).toBe('[libc libintl]');
    expect(await query('{{.Subpackages.0.Name}}: {{.Subpackages.0.Description}}')).toBe('hello-doc: docs');
    expect(await query('{{.Package.Copyright}}')).toBe('[map[license:MIT]]');
    expect(await query('{{ "{{" }}literal{{ "}}" }}')).toBe('{{literal}}');
    expect(await query('no placeholders')).toBe('no placeholders');
  });

  it('names missing fields and bad syntax as usage errors', async () => {
    await expect(query('{{.Package.Nmae}}')).rejects.toThrow(new UsageError('query: .Package.Nmae: no such field (did you mean "name"?)'));
    await expect(query('{{.Subpackages.3.Name}}')).rejects.toThrow(/\.Subpackages is a list of 1; use an index from 0 to 0/);
    await expect(query('{{.Package.Name.More}}')).rejects.toThrow(/\.Package\.Name is a string, not a mapping/);
    await expect(query('{{.Package.Name')).rejects.toThrow(/"\{\{" at column 1 has no closing "\}\}"/);
    await expect(query('x {{Package}}')).rejects.toThrow(/function "Package" not defined at column 3/);
    await expect(query('{{ if .Package.Name }}x')).rejects.toThrow(/\{\{if\}\} at column 1 has no \{\{end\}\}/);
    await expect(query('{{ end }}')).rejects.toThrow(/unexpected \{\{end\}\} at column 1/);
    await expect(query('{{ $nope }}')).rejects.toThrow(/undefined variable "\$nope"/);
  });

  it('runs the Go template forms melange users write', async () => {
    expect(await query('{{ .Package.Name }}-{{ .Package.Version }}-r{{ .Package.Epoch }}')).toBe('hello-1.10-r0');
    expect(await query('{{ range .Subpackages }}{{ .Name }} {{ end }}')).toBe('hello-doc ');
    expect(await query('{{ range $i, $d := .Package.Dependencies.Runtime }}{{ $i }}={{ $d }};{{ end }}')).toBe('0=libc;1=libintl;');
    expect(await query('{{ range .Package.Dependencies.Runtime -}} {{ . }} {{- end }}')).toBe('libclibintl');
    expect(await query('{{ range .Package.Dependencies.Provides }}x{{ else }}none{{ end }}')).toBe('none');
    expect(await query('{{ index .Vars "zeros" }} {{ index .Package.TargetArchitecture 1 }} {{ index .Vars "nope" }}.')).toBe('00303 aarch64 .');
    expect(await query('{{ len .Subpackages }} {{ len .Package.Dependencies.Runtime }}')).toBe('1 2');
    expect(await query('{{ if .Package.Description }}has{{ else if .Vars }}vars{{ else }}no{{ end }}')).toBe('vars');
    expect(await query('{{ with .Package.Copyright }}{{ (index . 0).License }}{{ end }}')).toBe('MIT');
    expect(await query('{{ $n := .Package.Name }}{{ $n }}{{ $n = "x" }}{{ $n }}')).toBe('hellox');
    expect(await query('{{ printf "%s@%s" .Package.Name .Package.Version }} {{ .Package.Name | printf "%q" }}')).toBe('hello@1.10 "hello"');
    expect(await query('{{ if eq .Package.Epoch 0 }}zero{{ end }} {{ if and (gt (len .Subpackages) 0) (ne .Package.Name "x") }}yes{{ end }} {{ not .Package.Name }}')).toBe('zero yes false');
    expect(await query('{{/* a comment */}}{{ `raw {{` }}')).toBe('raw {{');
    expect(await query('{{ range $k, $v := .Vars }}{{ $k }}:{{ $v }}{{ end }} {{ .Vars }}')).toBe('zeros:00303 map[zeros:00303]');
    expect(await query('{{ range .Subpackages }}{{ $.Package.Name }}/{{ .Name }}{{ end }}')).toBe('hello/hello-doc');
  });
});
