/*
 * The documents on the wire (SPEC §3-4), read back raw through @azure/cosmos: what a Go protosource
 * service sharing the account would read. Field names, types and encodings are checked one by one.
 */
import { type CosmosClient, type Container, type PluginConfig } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import {
  CosmosEventStore,
  CosmosOpaqueStore,
  decodeAggregateBody,
  type AggregateKeys,
  type EventRecord,
  type Materializable,
  type OpaqueData,
} from '../../src/index.js';
import { clientWithPlugins, startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';

type Raw = Record<string, unknown>;

interface SentBatch {
  operations: number;
  bytes: number;
  partitionKey: unknown;
  status?: number;
}

let fixture: CosmosFixture;
let client: CosmosClient;
let events: Container;
let aggregates: Container;
const batches: SentBatch[] = [];

/** Records every transactional batch request: its operation count, body size and answer. */
const recordBatches: PluginConfig = {
  on: 'request',
  plugin: async (context, _diagnostics, next) => {
    if (context.operationType !== 'batch') return next(context);
    const body = String(context.body);
    const batch: SentBatch = {
      operations: (JSON.parse(body) as unknown[]).length,
      bytes: Buffer.byteLength(body),
      partitionKey: context.headers?.['x-ms-documentdb-partitionkey'],
    };
    batches.push(batch);
    const response = await next(context);
    batch.status = response.code;
    return response;
  },
};

beforeAll(async () => {
  fixture = await startCosmosFixture();
  client = clientWithPlugins({ endpoint: fixture.cosmos.endpoint, key: fixture.cosmos.key }, [recordBatches]);
  const database = client.database(fixture.events.database.id);
  events = database.container(fixture.events.id);
  aggregates = database.container(fixture.aggregates.id);
});

afterAll(async () => {
  client?.dispose();
  await fixture?.close();
});

const MiB = 1024 * 1024;
const nowSeconds = () => Math.floor(Date.now() / 1000);
const ownFields = (doc: Raw) => Object.keys(doc).filter((k) => !k.startsWith('_')).sort();
const STANDARD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Reads one raw document through the fixture's own client (no plugin, no store code). */
async function readRaw(container: Container, id: string, pk: string): Promise<Raw> {
  const raw = fixture.client.database(container.database.id).container(container.id);
  const { resource, statusCode } = await raw.item(id, pk).read<Raw>();
  expect(statusCode).toBe(200);
  return resource as Raw;
}

async function queryRaw(container: Container, field: 'a' | 'pk', value: string): Promise<Raw[]> {
  const raw = fixture.client.database(container.database.id).container(container.id);
  const { resources } = await raw.items
    .query<Raw>({ query: `SELECT * FROM c WHERE c.${field} = @v`, parameters: [{ name: '@v', value }] }, { partitionKey: value })
    .fetchAll();
  return resources;
}

describe('events container documents', () => {
  let store: CosmosEventStore;
  beforeEach(() => {
    store = new CosmosEventStore(events);
  });

  it('writes id = String(version), a, numeric v and d as padded standard base64 — nothing else', async () => {
    const id = `agg-${randomUUID()}`;
    const data = Uint8Array.from([0xfb, 0xff, 0xbf, 0x00]); // '+/+/AA==' in standard base64
    await store.save(id, [{ version: 12, data }]);
    const doc = await readRaw(events, '12', id);
    expect(ownFields(doc)).toEqual(['a', 'd', 'id', 'v']);
    expect(doc.id).toBe('12');
    expect(doc.a).toBe(id);
    expect(doc.v).toBe(12);
    expect(doc.d).toBe(Buffer.from(data).toString('base64'));
    expect(doc.d).toBe('+/+/AA==');
    expect(doc.d).toMatch(STANDARD_BASE64);
  });

  it('encodes every byte value as standard base64', async () => {
    const id = `agg-${randomUUID()}`;
    const data = Uint8Array.from({ length: 256 }, (_, i) => i);
    await store.save(id, [{ version: 1, data }]);
    const doc = await readRaw(events, '1', id);
    expect(doc.d).toMatch(STANDARD_BASE64);
    expect(Buffer.from(doc.d as string, 'base64').equals(Buffer.from(data))).toBe(true);
  });

  it('omits d when the data is empty', async () => {
    const id = `agg-${randomUUID()}`;
    await store.save(id, [{ version: 1, data: new Uint8Array(0) }]);
    expect(ownFields(await readRaw(events, '1', id))).toEqual(['a', 'id', 'v']);
  });

  it("writes t = the record's ttl and ttl = t - now", async () => {
    const id = `agg-${randomUUID()}`;
    const t = nowSeconds() + 3600;
    const before = nowSeconds();
    await store.save(id, [{ version: 1, data: new Uint8Array([1]), ttl: t }]);
    const after = nowSeconds();
    const doc = await readRaw(events, '1', id);
    expect(ownFields(doc)).toEqual(['a', 'd', 'id', 't', 'ttl', 'v']);
    expect(doc.t).toBe(t);
    expect(doc.ttl).toBeGreaterThanOrEqual(t - after);
    expect(doc.ttl).toBeLessThanOrEqual(t - before);
  });

  it('writes the store-level ttl as t = now + ttlSeconds, ttl = ttlSeconds', async () => {
    const id = `agg-${randomUUID()}`;
    const ttlStore = new CosmosEventStore(events, { eventTtlSeconds: 90 });
    const before = nowSeconds();
    await ttlStore.save(id, [{ version: 1, data: new Uint8Array(0) }]);
    const after = nowSeconds();
    const doc = await readRaw(events, '1', id);
    expect(ownFields(doc)).toEqual(['a', 'id', 't', 'ttl', 'v']);
    expect(doc.ttl).toBe(90);
    expect(doc.t).toBeGreaterThanOrEqual(before + 90);
    expect(doc.t).toBeLessThanOrEqual(after + 90);
  });

  it('writes the seconds left as ttl (at least 1), and writes no document for an expiry already past', async () => {
    const id = `agg-${randomUUID()}`;
    const t = nowSeconds() + 2;
    await store.save(id, [{ version: 1, data: new Uint8Array(0), ttl: t }]);
    const doc = await readRaw(events, '1', id);
    expect(doc.t).toBe(t);
    expect(doc.ttl).toBeGreaterThanOrEqual(1);
    expect(doc.ttl).toBeLessThanOrEqual(2);
    // Refused before any request: such a record would take its version while no read returns it.
    await expect(store.save(id, [{ version: 2, data: new Uint8Array(0), ttl: nowSeconds() - 100 }])).rejects.toMatchObject({
      field: 'records[0].ttl',
    });
    expect((await queryRaw(events, 'a', id)).map((d) => d.id)).toEqual(['1']);
  });

  it('omits t and ttl when no ttl applies', async () => {
    const id = `agg-${randomUUID()}`;
    await store.save(id, [{ version: 1, data: new Uint8Array([7]), ttl: 0 }]);
    expect(ownFields(await readRaw(events, '1', id))).toEqual(['a', 'd', 'id', 'v']);
  });

  it('stores one document per record in the aggregate’s partition', async () => {
    const id = `agg-${randomUUID()}`;
    await store.save(id, [3, 1, 2, 10].map((version) => ({ version, data: new Uint8Array([version]) })));
    const docs = await queryRaw(events, 'a', id);
    expect(docs.map((d) => d.id).sort()).toEqual(['1', '10', '2', '3']);
    for (const d of docs) {
      expect(d.a).toBe(id);
      expect(d.id).toBe(String(d.v));
      expect(typeof d.v).toBe('number');
      expect(Buffer.from(d.d as string, 'base64')).toEqual(Buffer.from([d.v as number]));
    }
  });
});

describe('events are written in transactional batches within the service limits', () => {
  function recordsOf(count: number, bytes: number): EventRecord[] {
    return Array.from({ length: count }, (_, i) => ({ version: i + 1, data: new Uint8Array(bytes).fill(i + 1) }));
  }

  async function batchesOf(fn: () => Promise<void>): Promise<SentBatch[]> {
    const before = batches.length;
    await fn();
    return batches.slice(before);
  }

  it('splits a save of more than 2 MB into several batches, each under 2 MiB and at most 100 operations', async () => {
    const id = `agg-${randomUUID()}`;
    const store = new CosmosEventStore(events);
    const records = recordsOf(5, 600 * 1024); // ~800 KB each once base64-encoded
    const sent = await batchesOf(() => store.save(id, records));
    // 5 documents of ~800 KB cannot fit in fewer than 3 requests of 2 MiB.
    expect(sent.length).toBeGreaterThanOrEqual(3);
    expect(sent.reduce((sum, b) => sum + b.operations, 0)).toBe(5);
    for (const batch of sent) {
      expect(batch.operations).toBeLessThanOrEqual(100);
      expect(batch.bytes).toBeLessThan(2 * MiB);
      expect(batch.partitionKey).toBe(JSON.stringify([id]));
      expect(batch.status).toBe(200);
    }
    const { records: loaded } = await store.load(id);
    expect(loaded.map((r) => r.version)).toEqual([1, 2, 3, 4, 5]);
    loaded.forEach((r, i) => expect(Buffer.from(r.data).equals(Buffer.from(records[i].data))).toBe(true));
  });

  it('writes 250 small records in exactly 3 batches of 100, 100 and 50', async () => {
    const id = `agg-${randomUUID()}`;
    const store = new CosmosEventStore(events);
    const sent = await batchesOf(() => store.save(id, recordsOf(250, 16)));
    expect(sent.map((b) => b.operations)).toEqual([100, 100, 50]);
    expect((await queryRaw(events, 'a', id)).length).toBe(250);
  });

  it('sends one batch for up to 100 records', async () => {
    const id = `agg-${randomUUID()}`;
    const store = new CosmosEventStore(events);
    expect((await batchesOf(() => store.save(id, recordsOf(100, 16)))).map((b) => b.operations)).toEqual([100]);
  });
});

describe('aggregates container documents', () => {
  let opaque: CosmosOpaqueStore;
  beforeEach(() => {
    opaque = new CosmosOpaqueStore(aggregates);
  });

  async function putAndRead(data: OpaqueData, id: string): Promise<Raw> {
    await opaque.put(data);
    return readRaw(aggregates, id, data.pk);
  }

  it('writes id = sk, pk, sk and body as standard base64 — nothing else without version, TTL or slots', async () => {
    const pk = `pk-${randomUUID()}`;
    const body = Uint8Array.from([0xfb, 0xff, 0xbf, 0x00, 0x01]);
    const doc = await putAndRead({ pk, sk: 'state:v1 é', body, version: 0 }, 'state:v1 é');
    expect(ownFields(doc)).toEqual(['body', 'id', 'pk', 'sk']);
    expect(doc).toMatchObject({ id: 'state:v1 é', pk, sk: 'state:v1 é' });
    expect(doc.body).toBe(Buffer.from(body).toString('base64'));
    expect(doc.body).toMatch(STANDARD_BASE64);
  });

  it('omits an empty body, as Go does', async () => {
    const pk = `pk-${randomUUID()}`;
    const doc = await putAndRead({ pk, sk: 's', body: new Uint8Array(0) }, 's');
    expect(doc.body).toBeUndefined();
  });

  it.each([
    ['a/b', 'a%2Fb'],
    ['a\\b', 'a%5Cb'],
    ['what?', 'what?'],
    ['#1', '#1'],
    ['100%', '100%'],
    ['a%2Fb', 'a%252Fb'],
    ['tenant/x\\y?z#w%v', 'tenant%2Fx%5Cy?z#w%25v'],
  ])('keeps the id raw but for / \\ and escape-like %%: sk %j → id %j', async (sk, id) => {
    const pk = `pk-${randomUUID()}`;
    await opaque.put({ pk, sk, body: new Uint8Array([1]) });
    const [queried] = await queryRaw(aggregates, 'pk', pk);
    expect(queried.sk).toBe(sk);
    expect(queried.id).toBe(id);
  });

  it('leaves every other character of sk in the id untouched', async () => {
    const pk = `pk-${randomUUID()}`;
    const sk = "order:2024-01-01T00:00:00Z & more + 'quotes' \"too\" ü 😀 =;,";
    const doc = await putAndRead({ pk, sk, body: new Uint8Array(0) }, sk);
    expect(doc.id).toBe(sk);
  });

  it('writes version when non-zero, and t with ttl = t - now only when a TTL applies', async () => {
    const pk = `pk-${randomUUID()}`;
    const t = nowSeconds() + 7200;
    const before = nowSeconds();
    const doc = await putAndRead({ pk, sk: 's', body: new Uint8Array(0), version: 3, t }, 's');
    const after = nowSeconds();
    expect(ownFields(doc)).toEqual(['id', 'pk', 'sk', 't', 'ttl', 'version']);
    expect(doc.version).toBe(3);
    expect(doc.t).toBe(t);
    expect(doc.ttl).toBeGreaterThanOrEqual(t - after);
    expect(doc.ttl).toBeLessThanOrEqual(t - before);

    const noTtl = await putAndRead({ pk, sk: 's', body: new Uint8Array(0), version: 4, t: 0 }, 's');
    expect(ownFields(noTtl)).toEqual(['id', 'pk', 'sk', 'version']);
  });

  it('writes ttl of at least 1 for an expiry already past', async () => {
    const pk = `pk-${randomUUID()}`;
    const doc = await putAndRead({ pk, sk: 's', body: new Uint8Array(0), t: nowSeconds() - 50 }, 's');
    expect(doc.ttl).toBe(1);
  });

  it('writes gsiNpk/gsiNsk by the NA rule and omits empty slots', async () => {
    const pk = `pk-${randomUUID()}`;
    const doc = await putAndRead(
      {
        pk,
        sk: 's',
        body: new Uint8Array(0),
        gsi: {
          1: { pk: 'P1', sk: 'S1' },
          2: { pk: 'P2', sk: '' },
          3: { pk: 'P3' },
          4: { pk: '', sk: 'S4' },
          5: { sk: 'S5' },
          6: { pk: 'NA', sk: 'S6' },
          7: { pk: '', sk: 'NA' },
          8: { pk: '', sk: '' },
          9: {},
          20: { pk: 'P20', sk: 'S20' },
        },
      },
      's',
    );
    expect(ownFields(doc)).toEqual(
      ['id', 'pk', 'sk', 'gsi1pk', 'gsi1sk', 'gsi2pk', 'gsi2sk', 'gsi3pk', 'gsi3sk', 'gsi4sk', 'gsi5sk', 'gsi6sk', 'gsi20pk', 'gsi20sk'].sort(),
    );
    expect(doc).toMatchObject({
      gsi1pk: 'P1',
      gsi1sk: 'S1',
      gsi2pk: 'P2',
      gsi2sk: 'NA',
      gsi3pk: 'P3',
      gsi3sk: 'NA',
      gsi4sk: 'S4',
      gsi5sk: 'S5',
      gsi6sk: 'S6',
      gsi20pk: 'P20',
      gsi20sk: 'S20',
    });
  });

  it('writes all twenty slot pairs', async () => {
    const pk = `pk-${randomUUID()}`;
    const gsi = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [i + 1, { pk: `p${i + 1}`, sk: `s${i + 1}` }]));
    const doc = await putAndRead({ pk, sk: 's', body: new Uint8Array(0), gsi }, 's');
    for (let n = 1; n <= 20; n++) {
      expect(doc[`gsi${n}pk`]).toBe(`p${n}`);
      expect(doc[`gsi${n}sk`]).toBe(`s${n}`);
    }
    expect(ownFields(doc)).toHaveLength(3 + 40);
  });

  it('saveAggregate writes the same layout: keys, gzip body in base64, version, t and ttl', async () => {
    const store = new CosmosEventStore(events, { opaqueStore: opaque, compressThreshold: 10 });
    const pk = `order-${randomUUID()}`;
    const tenant = `tenant-${randomUUID()}`;
    const aggregate: Materializable & { lines: string[] } = {
      lines: ['apple', 'pear', 'plum'],
      version: 9,
      ttlSeconds: 600,
      keys: (): AggregateKeys => ({ pk, sk: 'orders/current', gsi: { 2: { pk: tenant } } }),
    };
    const before = nowSeconds();
    await store.saveAggregate(aggregate);
    const after = nowSeconds();
    const doc = await readRaw(aggregates, 'orders%2Fcurrent', pk);
    expect(ownFields(doc)).toEqual(['body', 'gsi2pk', 'gsi2sk', 'id', 'pk', 'sk', 't', 'ttl', 'version']);
    expect(doc).toMatchObject({ pk, sk: 'orders/current', version: 9, ttl: 600, gsi2pk: tenant, gsi2sk: 'NA' });
    expect(doc.t).toBeGreaterThanOrEqual(before + 600);
    expect(doc.t).toBeLessThanOrEqual(after + 600);
    expect(doc.body).toMatch(STANDARD_BASE64);
    const body = Buffer.from(doc.body as string, 'base64');
    expect([body[0], body[1]]).toEqual([0x1f, 0x8b]);
    expect(decodeAggregateBody(body)).toEqual({ lines: ['apple', 'pear', 'plum'], version: 9, ttlSeconds: 600 });
  });

  it('saveAggregate writes no version field for version 0 and no events', async () => {
    const store = new CosmosEventStore(events, { opaqueStore: opaque });
    const pk = `order-${randomUUID()}`;
    await store.saveAggregate({ version: 0, keys: () => ({ pk, sk: 'state' }) });
    const doc = await readRaw(aggregates, 'state', pk);
    expect(ownFields(doc)).toEqual(['body', 'id', 'pk', 'sk']);
    expect(Buffer.from(doc.body as string, 'base64').toString()).toBe('{"version":0}');
    expect(await queryRaw(events, 'a', pk)).toEqual([]);
  });
});
