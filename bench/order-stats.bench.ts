/**
 * The order statistics at scale: 10,000 customers in the read model. One customer's statistics are one point
 * read now, against the baseline of the same run, the former way: every document of the read model queried
 * to answer for one (and for the whole `/order-stats`, unpaged). Requests are counted at a fault proxy in
 * front of the embedded server; times are medians, compared as ratios to the baseline.
 */
import { CosmosClient, type OperationInput } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import { ensureContainers, ensureDatabase } from '../src/index.js';
import { startEmbeddedCosmos, startFaultProxy } from '../src/testing.js';
import { ORDER_STATS_PARTITION, OrderStatsStore } from '../example/src/modules/order-stats/order-stats.store.js';
import { medianMs, printTable, ratio } from './support.js';

const CUSTOMERS = 10_000;

/** A customer's row as the store writes it (`customer/<id>`, body base64 JSON, cents as a decimal string). */
function customerDocument(i: number): OperationInput {
  const customerId = `c-${String(i).padStart(5, '0')}`;
  const row = { customerId, orders: 3, statuses: { open: 1, submitted: 1, shipped: 1, cancelled: 0 }, revenueCents: String(1_000 + i) };
  const sk = `customer/${customerId}`;
  return {
    operationType: 'Create',
    resourceBody: { id: sk.replace(/\//g, '%2F'), pk: ORDER_STATS_PARTITION, sk, body: Buffer.from(JSON.stringify(row)).toString('base64') },
  };
}

export default async function (): Promise<void> {
  const cosmos = await startEmbeddedCosmos();
  const proxy = await startFaultProxy({ target: cosmos.endpoint });
  const client = new CosmosClient({ endpoint: proxy.endpoint, key: cosmos.key, connectionPolicy: { enableBackgroundEndpointRefreshing: false } });
  try {
    const database = await ensureDatabase(client, `order-stats-${randomUUID()}`);
    await ensureContainers(database);
    const container = database.container('aggregates');
    for (let i = 0; i < CUSTOMERS; i += 100) {
      await container.items.batch(Array.from({ length: 100 }, (_, j) => customerDocument(i + j)), ORDER_STATS_PARTITION);
    }
    const store = new OrderStatsStore(container);
    const wanted = 'c-07777';
    const baseline = async () => {
      const { resources } = await container.items.query({ query: 'SELECT * FROM c' }, { partitionKey: ORDER_STATS_PARTITION }).fetchAll();
      return resources.find((doc: { sk: string }) => doc.sk === `customer/${wanted}`);
    };
    const cases: Array<[string, () => Promise<unknown>]> = [
      ['baseline: every document, then one customer (before)', baseline],
      ['one customer: point read (now)', () => store.customer(wanted)],
      ['/order-stats page of 50 (now)', () => store.view({ limit: 50 })],
      ['/order-stats page of 1,000 (now)', () => store.view({ limit: 1_000 })],
    ];
    const rows: Array<Array<string | number>> = [['read, 10,000 customers', 'requests', 'median ms', 'time vs baseline']];
    let base = 0;
    for (const [label, run] of cases) {
      await run();
      await proxy.settle();
      proxy.clearRecords();
      await run();
      await proxy.settle();
      const requests = proxy.records.filter((r) => r.kind !== 'query-plan').length;
      const ms = await medianMs(5, run);
      if (base === 0) base = ms;
      rows.push([label, requests, ms.toFixed(1), ratio(ms, base)]);
    }
    printTable(rows);
    console.log('\nrequests: query pages and point reads sent, query-plan requests of the SDK aside.');
  } finally {
    client.dispose();
    await proxy.close();
    await cosmos.close();
  }
}
