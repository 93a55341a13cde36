/**
 * Requests per store call, counted at a fault proxy in front of the embedded server, against the fewest
 * Cosmos DB allows: `save` of N records = ceil(N/100) transactional batches, `loadTail(n)` one query page,
 * `load` one query round trip. Everything the SDK sends beside them is counted too, by kind.
 */
import { CosmosClient, type CosmosClientOptions } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { CosmosEventStore, ensureContainers, ensureDatabase, type EventRecord } from '../src/index.js';
import { startEmbeddedCosmos, startFaultProxy, type FaultProxy } from '../src/testing.js';
import { LIVE, liveBenchAccount, printTable, requestCharges } from './support.js';

const records = (from: number, count: number): EventRecord[] =>
  Array.from({ length: count }, (_, i) => ({ version: from + i, data: new TextEncoder().encode(`{"n":${from + i}}`) }));

interface Case {
  label: string;
  /** The fewest requests Cosmos DB needs, and what they are. */
  minimum: number;
  minimumIs: string;
  run(store: CosmosEventStore, proxy: FaultProxy): Promise<unknown>;
}

export default async function (): Promise<void> {
  // --live: the same calls through the proxy to a real account, with the request units it charges.
  const cosmos = LIVE ? { ...liveBenchAccount(), close: async () => undefined } : await startEmbeddedCosmos();
  const proxy = await startFaultProxy({ target: cosmos.endpoint });
  const charges = requestCharges();
  let cleanup: () => Promise<void> = async () => undefined;
  const client = new CosmosClient({
    endpoint: proxy.endpoint,
    ...(cosmos.key ? { key: cosmos.key } : { aadCredentials: new (await import('@azure/identity')).DefaultAzureCredential() }),
    // No timer-driven account refresh may add a request while a call is counted.
    connectionPolicy: { enableBackgroundEndpointRefreshing: false },
    plugins: [charges.plugin],
  } as unknown as CosmosClientOptions);
  try {
    const database = await ensureDatabase(client, `requests-${randomUUID()}`);
    // On a real account the bench's database goes when it ends.
    if (LIVE) cleanup = () => database.delete().then(() => undefined);
    await ensureContainers(database);
    const events = database.container('events');
    await events.read();
    const store = new CosmosEventStore(events);
    const long = `long-${randomUUID()}`;
    const short = `short-${randomUUID()}`;
    await store.save(long, records(1, 1000));
    await store.save(short, records(1, 10));

    const cases: Case[] = [
      ...[1, 100, 250, 1000].map(
        (n): Case => ({
          label: `save ${n}`,
          minimum: Math.ceil(n / 100),
          minimumIs: 'batch',
          run: (s) => s.save(`save-${randomUUID()}`, records(1, n)),
        }),
      ),
      { label: 'loadTail(1) of 1,000', minimum: 1, minimumIs: 'query', run: (s) => s.loadTail(long, 1) },
      { label: 'loadTail(100) of 1,000', minimum: 1, minimumIs: 'query', run: (s) => s.loadTail(long, 100) },
      { label: 'load of 10', minimum: 1, minimumIs: 'query', run: (s) => s.load(short) },
      { label: 'load of 1,000', minimum: 1, minimumIs: 'query', run: (s) => s.load(long) },
      {
        label: 'save 10, acknowledgement lost once',
        // The lost attempt, the resend, and the read-back that proves the 409 ours.
        minimum: 3,
        minimumIs: '2 batch + 1 query',
        run: async (s, p) => {
          const rule = p.addRule({ kind: 'batch', times: 1, action: { type: 'reset', when: 'after' } });
          await s.save(`lost-${randomUUID()}`, records(1, 10));
          rule.remove();
        },
      },
    ];

    const rows: Array<Array<string | number>> = [
      ['operation', 'minimum', 'sent', 'sent by kind', 'sent / minimum', 'without query plans', ...(LIVE ? ['request units'] : [])],
    ];
    for (const c of cases) {
      // Warm-up call first (metadata the SDK caches once per client is not a per-call cost), then the counted one.
      await c.run(store, proxy);
      await proxy.settle();
      proxy.clearRecords();
      charges.take();
      await c.run(store, proxy);
      await proxy.settle();
      const units = charges.take();
      const byKind = new Map<string, number>();
      for (const r of proxy.records) byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + 1);
      const sent = proxy.records.length;
      const plans = byKind.get('query-plan') ?? 0;
      rows.push([
        c.label,
        c.minimum === 1 || c.minimumIs.includes(' ') ? `${c.minimum} (${c.minimumIs})` : `${c.minimum} (${c.minimumIs}es)`,
        sent,
        [...byKind].map(([kind, n]) => `${n} ${kind}`).join(', '),
        `${(sent / c.minimum).toFixed(2)}x`,
        `${((sent - plans) / c.minimum).toFixed(2)}x`,
        ...(LIVE ? [units] : []),
      ]);
    }
    printTable(rows);
    console.log(
      '\nquery-plan: @azure/cosmos 4.9 sends a query-plan request beside every query iterator\'s first page, even with a ' +
        'partition key; it runs in parallel and is used only if the gateway refuses the query, and no option turns it off.',
    );
  } finally {
    await cleanup().catch(() => undefined);
    client.dispose();
    await proxy.close();
    await cosmos.close();
  }
}
