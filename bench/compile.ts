// Compile time per recipe over a corpus-sized set of generated, varied recipes (3,400, as many as the public
// Wolfi collection: built-in pipelines, vars, var-transforms, ranged and conditional subpackages, substituted
// priorities, `${{ }}` expressions, nested steps), beside the time to merely parse their YAML.
// Goal: ≤ 3 ms per recipe. BENCH_QUICK=1 runs 100 recipes.
import { performance } from 'node:perf_hooks';
import { parseRecipe } from '../src/config/load.ts';
import { parseYaml } from '../src/config/yaml-source.ts';
import { compileRecipe } from '../src/pipeline/compile.ts';
import { PipelineLibrary } from '../src/pipeline/library.ts';

const COUNT = process.env.BENCH_QUICK === '1' ? 100 : 3400;
const ROUNDS = 3;

/** A small deterministic PRNG, so every run measures the same recipes. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const SHA = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

function recipe(i: number): string {
  const r = random(i + 1);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const n = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const name = `pkg-${i}`;
  const lines: string[] = [
    'package:',
    `  name: ${name}`,
    `  version: ${n(0, 9)}.${n(0, 30)}.${n(0, 99)}`,
    `  epoch: ${n(0, 5)}`,
    `  description: generated recipe ${i} for \${{package.name}}`,
    '  copyright:',
    '    - license: Apache-2.0',
    '  dependencies:',
    '    runtime:',
    ...Array.from({ length: n(0, 4) }, (_, k) => `      - dep-${k}`),
    '',
    'environment:',
    '  contents:',
    '    packages:',
    ...Array.from({ length: n(2, 8) }, (_, k) => `      - build-tool-${k}`),
    '  environment:',
    '    CFLAGS: -O2',
    '',
    'vars:',
    ...Array.from({ length: n(1, 6) }, (_, k) => `  var${k}: value-${k}-\${{package.version}}`),
    '',
    'var-transforms:',
    '  - from: ${{package.version}}',
    '    match: ^(\\d+)\\.(\\d+)\\..*$',
    '    replace: $1.${2}',
    '    to: short-version',
    '',
    'pipeline:',
  ];
  const source = pick(['fetch', 'git', 'none']);
  if (source === 'fetch') {
    lines.push('  - uses: fetch', '    with:', `      uri: https://example.com/${name}-\${{package.version}}.tar.gz`, `      expected-sha256: ${SHA}`);
  } else if (source === 'git') {
    lines.push('  - uses: git-checkout', '    with:', `      repository: https://example.com/${name}.git`, '      tag: v${{package.version}}', `      expected-commit: ${COMMIT}`);
  }
  const style = pick(['autoconf', 'cmake', 'meson', 'go', 'runs']);
  if (style === 'autoconf') {
    lines.push('  - uses: autoconf/configure', '    with:', '      opts: --enable-shared --disable-static', '  - uses: autoconf/make', '  - uses: autoconf/make-install');
  } else if (style === 'cmake') {
    lines.push('  - uses: cmake/configure', '  - uses: cmake/build', '  - uses: cmake/install');
  } else if (style === 'meson') {
    lines.push('  - uses: meson/configure', '  - uses: meson/compile', '  - uses: meson/install');
  } else if (style === 'go') {
    lines.push('  - uses: go/build', '    with:', '      packages: ./cmd/tool', `      output: ${name}`, '      ldflags: -X main.version=${{package.version}}');
  }
  for (let k = 0; k < n(1, 6); k++) {
    lines.push(`  - name: step ${k}`, `    working-directory: dir-${k}`, '    runs: |', `      echo \${{vars.var0}} \${{vars.short-version}} \${{targets.destdir}}`, '      make -C sub install DESTDIR=${{targets.contextdir}}');
  }
  lines.push(
    '  - pipeline:',
    "      - if: ${{build.arch}} == 'x86_64'",
    '        runs: echo amd64',
    "      - if: ${{build.arch}} == 'aarch64' || ${{build.arch}} == 'riscv64'",
    '        runs: echo other',
    '  - uses: strip',
    '',
    'data:',
    '  - name: flavours',
    '    items:',
    ...Array.from({ length: n(1, 5) }, (_, k) => `      3.1${k}: "31${k}"`),
    '',
    'subpackages:',
    '  - name: ${{package.name}}-dev',
    '    pipeline:',
    '      - uses: split/dev',
    '  - name: ${{package.name}}-doc',
    '    pipeline:',
    '      - uses: split/manpages',
    '  - range: flavours',
    '    name: py${{range.key}}-${{package.name}}',
    "    if: ${{range.value}} != ''",
    '    dependencies:',
    '      provider-priority: ${{range.value}}',
    '      runtime:',
    '        - python-${{range.key}}',
    '    pipeline:',
    '      - runs: mkdir -p ${{targets.subpkgdir}}/usr/lib/python${{range.key}} ${{range.key == "3.10" && "--legacy" || ""}}',
    "      - if: ${{ build.arch == 'x86_64' && !(range.key == '3.11') }}",
    '        runs: echo ${{ !(range.value == "") }}',
    '',
    'test:',
    '  pipeline:',
    '    - runs: ${{package.name}} --version',
  );
  return `${lines.join('\n')}\n`;
}

const texts = Array.from({ length: COUNT }, (_, i) => recipe(i));
const library = new PipelineLibrary();

function parseOnce(): number {
  const start = performance.now();
  for (let i = 0; i < texts.length; i++) parseYaml(texts[i]!, `recipe-${i}.yaml`);
  return performance.now() - start;
}

function compileOnce(): { total: number; compileOnly: number; steps: number } {
  let compileOnly = 0;
  let steps = 0;
  const start = performance.now();
  for (let i = 0; i < texts.length; i++) {
    const loaded = parseRecipe(texts[i]!, `recipe-${i}.yaml`);
    const t = performance.now();
    const plan = compileRecipe(loaded, { arch: 'x86_64', library });
    compileOnly += performance.now() - t;
    for (const p of plan.packages) steps += p.steps.length;
  }
  return { total: performance.now() - start, compileOnly, steps };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// A cold compile reads the built-in definitions once; report it for information.
const coldStart = performance.now();
compileRecipe(parseRecipe(texts[0]!, 'recipe-0.yaml'), { arch: 'x86_64' });
const cold = performance.now() - coldStart;

parseOnce();
compileOnce();
const parse: number[] = [];
const total: number[] = [];
const only: number[] = [];
let steps = 0;
for (let round = 0; round < ROUNDS; round++) {
  parse.push(parseOnce());
  const c = compileOnce();
  total.push(c.total);
  only.push(c.compileOnly);
  steps = c.steps;
}

const perRecipe = (ms: number) => (ms / COUNT).toFixed(3);
const p = median(parse);
const t = median(total);
const o = median(only);
console.log(`recipes: ${COUNT} (${texts.reduce((a, x) => a + x.length, 0)} bytes of YAML, ${steps} compiled steps), median of ${ROUNDS} rounds`);
console.log(`parse YAML only        ${perRecipe(p)} ms/recipe`);
console.log(`load + compile         ${perRecipe(t)} ms/recipe   (${(t / p).toFixed(2)}× parse)   goal ≤ 3 ms: ${t / COUNT <= 3 ? 'met' : 'NOT met'}`);
console.log(`  of which compile     ${perRecipe(o)} ms/recipe   (${(o / p).toFixed(2)}× parse)`);
console.log(`first compile of a process (reads built-in definitions): ${cold.toFixed(1)} ms`);
