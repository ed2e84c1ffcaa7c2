// `builder query` with the Go template forms melange users write, through the real CLI.
import { describe, expect, it } from 'vitest';
import { builder, hasStackTrace } from '../helpers/cli.ts';
import { useTempDirs, writeRecipe } from '../helpers/tmp.ts';

const tempDir = useTempDirs();
const RECIPE = `package:
  name: py3-foo
  version: 2.31.0
  epoch: 3
vars:
  pypi-package: foo
subpackages:
  - name: py3-foo-doc
  - name: py3-foo-dev
`;

describe('builder query', () => {
  it.each([
    ['{{ .Package.Name }}-{{ .Package.Version }}-r{{ .Package.Epoch }}', 'py3-foo-2.31.0-r3'],
    ['{{ range .Subpackages }}{{ .Name }}{{ "\\n" }}{{ end }}', 'py3-foo-doc\npy3-foo-dev\n'],
    ['{{ index .Vars "pypi-package" }}', 'foo'],
    ['{{- range $i, $s := .Subpackages }}{{ if $i }},{{ end }}{{ $s.Name }}{{ end -}}', 'py3-foo-doc,py3-foo-dev'],
    ['{{ .Package.Version | printf "v%s" }}', 'v2.31.0'],
  ])('%s', async (template, expected) => {
    const file = await writeRecipe(await tempDir(), RECIPE);
    const r = await builder(['query', file, template]);
    expect(r.exitCode, r.all).toBe(0);
    // The CLI ends the output with a newline (stripped here as $(...) and Makefile $(shell ...) strip it).
    expect(r.stdout).toBe(expected);
  });

  it('a template error is a usage error, without a stack trace', async () => {
    const file = await writeRecipe(await tempDir(), RECIPE);
    const r = await builder(['query', file, '{{ range .Subpackages }}']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('{{range}} at column 1 has no {{end}}');
    expect(hasStackTrace(r.all)).toBe(false);
  });
});
