/**
 * Requests per operation, counted at a fault proxy in front of the embedded server on a warm client, against
 * the fewest Cosmos DB allows for each. Everything the SDK sends beside them is counted too, by kind.
 *
 * Other parts add their operations (repository, subscriptions) as a group of cases: write a function of the
 * `CaseGroup` shape, in a file of your own if you like, and list it in `CASE_GROUPS` below. It gets the proxy,
 * a proxied client, the database (containers `events` and `aggregates`, made by `ensureContainers`) and the
 * store; its cases run after a warm-up call each, counted one at a time.
 */
import { CosmosClient, type CosmosClientOptions, type Database } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import {
  CosmosEventStore,
  CosmosOpaqueStore,
  ensureContainers,
  ensureDatabase,
  type EventRecord,
  type Materializable,
} from '../src/index.js';
import { startEmbeddedCosmos, startFaultProxy, type FaultProxy } from '../src/testing.js';
import { LIVE, liveBenchAccount, printTable, requestCharges } from './support.js';
import { repositoryCases } from './requests-repository.js';
import { subscriptionCases } from './requests-subscriptions.js';

/** One counted operation. */
export interface RequestCase {
  label: string;
  /** The fewest requests Cosmos DB needs, and what they are. */
  minimum: number;
  minimumIs: string;
  /** Called twice: a warm-up, then the counted call. Each call must do the same work (fresh ids if it writes). */
  run(): Promise<unknown>;
}

/** What a group of cases is given. */
export interface RequestBenchContext {
  proxy: FaultProxy;
  client: CosmosClient;
  database: Database;
  store: CosmosEventStore;
}

/** Builds the cases of one part of the library (it may write the data its cases read first). */
export type CaseGroup = (context: RequestBenchContext) => Promise<RequestCase[]>;

const encoder = new TextEncoder();
const records = (from: number, count: number, type?: string): EventRecord[] =>
  Array.from({ length: count }, (_, i) => ({ version: from + i, data: encoder.encode(`{"n":${from + i}}`), ...(type && { type }) }));

class Counter implements Materializable {
  constructor(
    readonly id: string,
    public version: number,
  ) {}
  keys() {
    return { pk: `counter#${this.id}`, sk: 'state', gsi: { 1: { pk: 'counters', sk: this.id } } };
  }
}

/** Every operation of `CosmosEventStore` and `CosmosOpaqueStore`. */
export const storeCases: CaseGroup = async ({ proxy, database, store }) => {
  const long = `Long/${randomUUID()}`;
  const short = `Short/${randomUUID()}`;
  await store.save(long, records(1, 1000));
  await store.save(short, records(1, 10, 'Counted'));
  const opaque = new CosmosOpaqueStore(database.container('aggregates'));
  const materializing = new CosmosEventStore(database.container('events'), { opaqueStore: opaque });
  await materializing.saveAggregate(new Counter('c-1', 1));
  let checked = 0;
  const fresh = (label: string) => `${label}-${randomUUID()}`;
  return [
    ...[1, 100, 250, 1000].map(
      (n): RequestCase => ({
        label: `save ${n}`,
        minimum: Math.ceil(n / 100),
        minimumIs: n > 100 ? 'batches' : 'batch',
        run: () => store.save(fresh('save'), records(1, n)),
      }),
    ),
    {
      label: 'save 10, expectedVersion N',
      minimum: 1,
      minimumIs: 'batch',
      run: async () => {
        const id = `checked-${++checked}-${randomUUID()}`;
        await proxy.settle();
        await database.container('events').items.create({ id: '1', a: id, v: 1 });
        await proxy.settle();
        proxy.clearRecords(); // the setup write is not the case's
        await store.save(id, records(2, 10), { expectedVersion: 1 });
      },
    },
    {
      label: 'save, expectedVersion stale',
      // The refused batch, and the read of the version found after it.
      minimum: 2,
      minimumIs: 'batch + query',
      run: () => store.save(short, records(6, 1), { expectedVersion: 5 }).catch(() => undefined),
    },
    { label: 'loadTail(1) of 1,000', minimum: 1, minimumIs: 'query', run: () => store.loadTail(long, 1) },
    { label: 'loadTail(100) of 1,000', minimum: 1, minimumIs: 'query', run: () => store.loadTail(long, 100) },
    { label: 'load of 10', minimum: 1, minimumIs: 'query', run: () => store.load(short) },
    { label: 'load of 1,000', minimum: 1, minimumIs: 'query', run: () => store.load(long) },
    { label: 'loadRange 500..600 of 1,000', minimum: 1, minimumIs: 'query', run: () => store.loadRange(long, { fromVersion: 500, toVersion: 600 }) },
    {
      label: 'readStream of 1,000, pages of 250',
      minimum: 4,
      minimumIs: 'queries',
      run: async () => {
        for await (const record of store.readStream(long, { pageSize: 250 })) void record;
      },
    },
    {
      label: 'readAll by type (10 events)',
      // Cross-partition: the plan, then one query per physical partition (one here).
      minimum: 2,
      minimumIs: 'query-plan + query',
      run: async () => {
        for await (const item of store.readAll({ types: ['Counted'], aggregateType: 'Short' })) void item;
      },
    },
    {
      label: 'truncateBefore 91 of 100',
      // The listing (which shows the last version too) and one batch of 90 deletes.
      minimum: 2,
      minimumIs: '1 query + 1 batch',
      run: async () => {
        const id = fresh('trunc');
        await store.save(id, records(1, 100));
        await proxy.settle();
        proxy.clearRecords();
        await store.truncateBefore(id, 91);
      },
    },
    {
      label: 'deleteStream of 100',
      // The listing, then the tombstone's create with the first 99 deletes in one atomic batch, then the last.
      minimum: 3,
      minimumIs: '1 query + 2 batch',
      run: async () => {
        const id = fresh('erase');
        await store.save(id, records(1, 100));
        await proxy.settle();
        proxy.clearRecords();
        await store.deleteStream(id);
      },
    },
    {
      label: 'save 10, acknowledgement lost once',
      // The lost attempt, the resend, and the read-back that proves the 409 ours.
      minimum: 3,
      minimumIs: '2 batch + 1 query',
      run: async () => {
        const rule = proxy.addRule({ kind: 'batch', times: 1, action: { type: 'reset', when: 'after' } });
        await store.save(fresh('lost'), records(1, 10));
        rule.remove();
      },
    },
    { label: 'saveAggregate (upsert)', minimum: 1, minimumIs: 'write', run: () => materializing.saveAggregate(new Counter('c-1', 1)) },
    { label: 'opaque get', minimum: 1, minimumIs: 'read', run: () => opaque.get('counter#c-1', 'state') },
    { label: 'opaque query, slot 1', minimum: 2, minimumIs: 'query-plan + query', run: () => opaque.query({ index: 1, pk: 'counters' }) },
  ];
};

/** The groups run, in order. Repository and subscription benches add theirs here. */
export const CASE_GROUPS: CaseGroup[] = [storeCases, repositoryCases, subscriptionCases];

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
    const context: RequestBenchContext = { proxy, client, database, store: new CosmosEventStore(events) };

    const rows: Array<Array<string | number>> = [
      ['operation', 'minimum', 'sent', 'sent by kind', 'sent / minimum', ...(LIVE ? ['request units'] : [])],
    ];
    for (const group of CASE_GROUPS) {
      for (const c of await group(context)) {
        // Warm-up call first (metadata the SDK caches once per client is not a per-call cost), then the counted one.
        await c.run();
        await proxy.settle();
        proxy.clearRecords();
        charges.take();
        await c.run();
        await proxy.settle();
        const units = charges.take();
        const byKind = new Map<string, number>();
        for (const r of proxy.records) byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + 1);
        const sent = proxy.records.length;
        rows.push([
          c.label,
          `${c.minimum} (${c.minimumIs})`,
          sent,
          [...byKind].map(([kind, n]) => `${n} ${kind}`).join(', '),
          `${(sent / c.minimum).toFixed(2)}x`,
          ...(LIVE ? [units.toFixed(2)] : []),
        ]);
      }
    }
    printTable(rows);
  } finally {
    await cleanup().catch(() => undefined);
    client.dispose();
    await proxy.close();
    await cosmos.close();
  }
}
