// The project's test command: runs vitest, then prints the one closing line CI reads,
// `tests: N passed, M failed`, and exits non-zero on any failure (or when no test ran).
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface VitestJson {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  numTotalTests: number;
  testResults: { status: string; message?: string; name: string }[];
}

const dir = await mkdtemp(join(tmpdir(), 'builder-test-'));
const report = join(dir, 'vitest.json');
const run = await execa(
  'node_modules/.bin/vitest',
  ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { stdio: 'inherit', reject: false },
);

let result: VitestJson | undefined;
try {
  result = JSON.parse(await readFile(report, 'utf8')) as VitestJson;
} catch {
  result = undefined;
}
await rm(dir, { recursive: true, force: true });

if (!result) {
  console.log('tests: 0 passed, 1 failed');
  console.error(`vitest produced no report (exit code ${run.exitCode ?? 'none'})`);
  process.exit(1);
}
// A file that fails to load has no test results of its own: count it as a failure.
const brokenFiles = result.testResults.filter((f) => f.status === 'failed' && f.message).length;
const failed = result.numFailedTests + (result.numFailedTests === 0 ? brokenFiles : 0);
const skipped = result.numPendingTests + result.numTodoTests;
console.log(`tests: ${result.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 || result.numPassedTests === 0 || run.exitCode !== 0 ? 1 : 0);
