/**
 * Runs every `*.bench.ts` in this folder (compiled to dist-bench/), one after another, or only those whose
 * file name contains one of the command-line arguments: `npm run bench -- snapshot`.
 */
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cpus, totalmem } from 'node:os';

const here = dirname(fileURLToPath(import.meta.url));
// `--live` is an option of the benches (see support.ts), not a file filter.
const filters = process.argv.slice(2).filter((a) => a !== '--live');
const files = (await readdir(here))
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();

console.log(
  `machine: ${cpus()[0]?.model ?? 'unknown cpu'} x${cpus().length}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`,
);
for (const file of files) {
  console.log(`\n## ${file.replace(/\.js$/, '.ts')}`);
  const bench = (await import(pathToFileURL(join(here, file)).href)) as { default: () => Promise<void> };
  await bench.default();
}
