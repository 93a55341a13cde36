import type { PluginConfig } from '@azure/cosmos';
import { performance } from 'node:perf_hooks';

/** Prints rows as an aligned table (first row: headers). */
export function printTable(rows: ReadonlyArray<ReadonlyArray<string | number>>): void {
  const cells = rows.map((row) => row.map(String));
  const widths = cells[0].map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => `| ${row.map((cell, i) => cell.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(cells[0]));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of cells.slice(1)) console.log(line(row));
}

/** Median wall time of `runs` calls of `fn`, in milliseconds, after one warm-up call. */
export async function medianMs(runs: number, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** `a / b` with two decimals, for "ours vs baseline" columns. */
export function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}x`;
}

/**
 * `npm run bench -- --live`: the benches that support it run against the account of COSMOS_TEST_ENDPOINT
 * (and COSMOS_TEST_KEY), as `npm run test:live` does, and add each operation's request units to their tables.
 */
export const LIVE = process.argv.includes('--live');

/** The live account of `--live`; a clear error when it is asked for without COSMOS_TEST_ENDPOINT. */
export function liveBenchAccount(): { endpoint: string; key?: string } {
  const endpoint = process.env.COSMOS_TEST_ENDPOINT?.trim();
  if (!endpoint) throw new Error('npm run bench -- --live needs COSMOS_TEST_ENDPOINT (and COSMOS_TEST_KEY, or keyless sign-in)');
  const key = process.env.COSMOS_TEST_KEY?.trim();
  return key ? { endpoint, key } : { endpoint };
}

/**
 * Sums the `x-ms-request-charge` of every answer a client gets: give `plugin` to the client's `plugins`
 * option (read by @azure/cosmos, left out of its typings), read `take()` after a call (it resets the sum).
 */
export function requestCharges(): { plugin: PluginConfig; take(): number } {
  let sum = 0;
  const add = (headers: Record<string, unknown> | undefined) => {
    const charge = Number(headers?.['x-ms-request-charge']);
    if (Number.isFinite(charge)) sum += charge;
  };
  return {
    plugin: {
      on: 'request',
      plugin: async (context, diagnosticNode, next) => {
        try {
          const response = await next(context);
          add(response.headers);
          return response;
        } catch (err) {
          add((err as { headers?: Record<string, unknown> }).headers);
          throw err;
        }
      },
    },
    take() {
      const taken = sum;
      sum = 0;
      return Math.round(taken * 100) / 100;
    },
  };
}
