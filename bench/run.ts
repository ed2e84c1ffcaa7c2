// `npm run bench`: runs every benchmark in this folder one after another (never in parallel: they measure
// side by side within themselves, and a second benchmark running would only add noise).
// `npm run bench -- apk-pack qemu` runs only those.
import { execa } from 'execa';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const wanted = process.argv.slice(2);
const all = (await readdir(dir)).filter((f) => f.endsWith('.ts') && f !== 'run.ts').sort();
const chosen = wanted.length ? all.filter((f) => wanted.includes(f.replace(/\.ts$/, ''))) : all;
if (chosen.length === 0) {
  console.error(`no benchmark matches ${wanted.join(' ')}; available: ${all.map((f) => f.replace(/\.ts$/, '')).join(', ')}`);
  process.exit(2);
}
let failed = 0;
for (const file of chosen) {
  console.log(`\n=== ${file.replace(/\.ts$/, '')} ===`);
  const r = await execa(process.execPath, [`${dir}${file}`], { stdio: 'inherit', reject: false });
  if (r.exitCode !== 0) failed++;
}
process.exit(failed ? 1 : 0);
