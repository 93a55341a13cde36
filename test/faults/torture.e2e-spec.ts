/*
 * Torture: several writers append to a few aggregates at once, each through its own fault proxy injecting
 * random faults (seeded), while a reader loads the streams. Then everything stored is checked against what
 * each writer was told:
 * - every acknowledged append is stored, exactly once, with its own bytes;
 * - no version holds two writers' data, and no record sits at another version than its own;
 * - every save (one chunk of several records) is stored whole or not at all, and was never seen in part;
 * - nothing that was not acknowledged is stored, unless its save ended with an unknown outcome.
 * The append budget ends the run (about 5 s here); the deadline is only a safety net for a stuck run, far
 * beyond what a slow shared runner needs, so the minimum counts below never depend on the machine's speed.
 */
import { randomUUID } from 'node:crypto';
import { CosmosClient } from '@azure/cosmos';
import {
  CosmosEventStore,
  ensureContainers,
  ensureDatabase,
  isConflict,
  isOutcomeUnknown,
  type EventRecord,
} from '../../src/index.js';
import {
  startEmbeddedCosmos,
  startFaultProxy,
  type EmbeddedCosmos,
  type FaultProxy,
  type FaultRule,
} from '../../src/testing.js';
import { proxiedClient } from '../support/faults.js';

const WRITERS = 5;
const AGGREGATES = 3;
const APPEND_BUDGET = 4000;
// Safety net only: the budget ends the run. The jest timeout below leaves room past it for the checks.
const SAFETY_DEADLINE_MS = 240_000;
const MAX_RECORDS_PER_SAVE = 8;

type Outcome = 'acknowledged' | 'conflict' | 'unknown' | 'failed';

interface SaveLog {
  key: string; // writer/save, unique per save call
  aggregate: string;
  versions: number[];
  outcome?: Outcome;
  /** A batch of this save met a 409 after an earlier attempt's outcome was unknown. */
  echoResolved?: boolean;
}

/** Faults on every writer's and the reader's proxy: each rule draws from the proxy's seeded generator. */
const FAULTS: FaultRule[] = [
  { kind: 'batch', probability: 0.04, action: { type: 'reset', when: 'before' } },
  { kind: 'batch', probability: 0.04, action: { type: 'reset', when: 'after' } },
  { kind: 'batch', probability: 0.03, action: { type: 'status', status: 503 } },
  { kind: 'batch', probability: 0.03, action: { type: 'status', status: 503, when: 'after' } },
  { kind: 'batch', probability: 0.02, action: { type: 'status', status: 408 } },
  { kind: 'batch', probability: 0.03, action: { type: 'status', status: 408, when: 'after' } },
  { kind: 'batch', probability: 0.05, action: { type: 'status', status: 429, retryAfterMs: 2 } },
  { kind: ['batch', 'query'], probability: 0.05, action: { type: 'latency', ms: 3 } },
  { kind: 'query', probability: 0.03, action: { type: 'status', status: 503 } },
  { kind: 'query', probability: 0.03, action: { type: 'status', status: 408 } },
  { kind: 'query', probability: 0.03, action: { type: 'status', status: 429, retryAfterMs: 2 } },
  { kind: 'query-plan', probability: 0.05, action: { type: 'reset', when: 'before' } },
];

let cosmos: EmbeddedCosmos;
let direct: CosmosClient;
const proxies: FaultProxy[] = [];
const clients: CosmosClient[] = [];

afterAll(async () => {
  for (const client of clients) client.dispose();
  for (const proxy of proxies) await proxy.close();
  direct?.dispose();
  await cosmos?.close();
});

const decode = (data: Uint8Array) => new TextDecoder().decode(data);

it('loses nothing, duplicates nothing and shows no partial chunk under random faults and contention', async () => {
  cosmos = await startEmbeddedCosmos();
  direct = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
  const database = await ensureDatabase(direct, `torture-${randomUUID()}`);
  await ensureContainers(database);

  async function faultyStore(seed: number): Promise<{ store: CosmosEventStore; proxy: FaultProxy }> {
    const proxy = await startFaultProxy({ target: cosmos.endpoint, seed });
    proxies.push(proxy);
    const client = proxiedClient(cosmos, proxy, { connectionPolicy: { retryOptions: { maxRetryAttemptCount: 3 } } });
    clients.push(client);
    const events = client.database(database.id).container('events');
    await events.read();
    for (const rule of FAULTS) proxy.addRule(rule);
    // Three attempts only, so that some saves do run out of retries with an unknown outcome.
    return { store: new CosmosEventStore(events, { retries: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 8 } }), proxy };
  }

  const aggregates = Array.from({ length: AGGREGATES }, (_, i) => `torture-${i}-${randomUUID()}`);
  const saves = new Map<string, SaveLog>();
  const started = Date.now();
  let budget = APPEND_BUDGET;
  let loadFailures = 0;
  let partialSightings = 0;
  let readerLoads = 0;
  const inTime = () => Date.now() - started < SAFETY_DEADLINE_MS;

  async function writer(w: number): Promise<void> {
    const { store, proxy } = await faultyStore(1000 + w);
    let seed = w * 7919 + 1;
    const random = () => ((seed = (seed * 48271) % 2147483647) - 1) / 2147483646;
    const next = new Map<string, number>(aggregates.map((a) => [a, 1]));
    const reload = async (aggregate: string) => {
      try {
        const { records } = await store.loadTail(aggregate, 1);
        next.set(aggregate, (records[0]?.version ?? 0) + 1);
      } catch {
        loadFailures++;
      }
    };
    for (let s = 0; budget > 0 && inTime(); s++) {
      const aggregate = aggregates[Math.floor(random() * AGGREGATES)];
      const from = next.get(aggregate)!;
      const count = 1 + Math.floor(random() * MAX_RECORDS_PER_SAVE);
      budget -= count;
      const key = `${w}/${s}`;
      const versions = Array.from({ length: count }, (_, i) => from + i);
      const log: SaveLog = { key, aggregate, versions };
      saves.set(key, log);
      const batch: EventRecord[] = versions.map((v) => ({ version: v, data: new TextEncoder().encode(`${key}/${v}`) }));
      const before = proxy.records.length;
      try {
        await store.save(aggregate, batch);
        log.outcome = 'acknowledged';
        next.set(aggregate, from + count);
      } catch (err) {
        log.outcome = isConflict(err) ? 'conflict' : isOutcomeUnknown(err) ? 'unknown' : 'failed';
        await reload(aggregate);
      }
      const attempts = proxy.records.slice(before).filter((r) => r.kind === 'batch');
      log.echoResolved = attempts.some((r, i) => i > 0 && r.status === 207) && attempts[0].status !== 207;
    }
  }

  async function reader(): Promise<void> {
    const { store } = await faultyStore(99);
    while (budget > 0 && inTime()) {
      const aggregate = aggregates[readerLoads++ % AGGREGATES];
      let records: EventRecord[];
      try {
        ({ records } = await store.load(aggregate));
      } catch {
        loadFailures++;
        continue;
      }
      const seen = new Map<string, number>();
      for (const r of records) {
        const key = decode(r.data).split('/').slice(0, 2).join('/');
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
      for (const [key, n] of seen) if (saves.get(key) && n !== saves.get(key)!.versions.length) partialSightings++;
    }
  }

  await Promise.all([...Array.from({ length: WRITERS }, (_, w) => writer(w)), reader()]);
  const elapsedMs = Date.now() - started;
  const endedBy = budget > 0 ? 'safety deadline' : 'append budget';

  // Everything stored, read past the proxies.
  const stored = new Map<string, Map<number, string>>();
  const documentsPerAggregate = new Map<string, number>();
  for (const aggregate of aggregates) {
    const { resources } = await direct
      .database(database.id)
      .container('events')
      .items.query<{ v: number; d: string }>({ query: 'SELECT c.v, c.d FROM c WHERE c.a = @a', parameters: [{ name: '@a', value: aggregate }] })
      .fetchAll();
    documentsPerAggregate.set(aggregate, resources.length);
    stored.set(aggregate, new Map(resources.map((r) => [r.v, Buffer.from(r.d, 'base64').toString()])));
  }

  const violations: string[] = [];
  const storedPerSave = new Map<string, number>();
  for (const [aggregate, docs] of stored) {
    if (documentsPerAggregate.get(aggregate) !== docs.size) violations.push(`${aggregate}: two documents for one version`);
    for (const [v, payload] of docs) {
      const [w, s, ownVersion] = payload.split('/');
      const key = `${w}/${s}`;
      const save = saves.get(key);
      if (!save) violations.push(`${aggregate} v${v}: data of no known save (${payload})`);
      else if (save.aggregate !== aggregate) violations.push(`${aggregate} v${v}: data of a save to ${save.aggregate}`);
      if (Number(ownVersion) !== v) violations.push(`${aggregate} v${v}: holds version ${ownVersion}'s data`);
      storedPerSave.set(key, (storedPerSave.get(key) ?? 0) + 1);
    }
    const versions = [...docs.keys()].sort((a, b) => a - b);
    if (versions.some((v, i) => v !== i + 1)) violations.push(`${aggregate}: versions are not 1..${versions.length}`);
  }
  const counts = { acknowledged: 0, conflict: 0, unknown: 0, failed: 0 };
  let unknownApplied = 0;
  let acknowledgedAppends = 0;
  let appends = 0;
  for (const save of saves.values()) {
    const n = storedPerSave.get(save.key) ?? 0;
    appends += save.versions.length;
    counts[save.outcome!]++;
    if (n !== 0 && n !== save.versions.length) violations.push(`save ${save.key}: ${n} of ${save.versions.length} records stored`);
    if (save.outcome === 'acknowledged') {
      acknowledgedAppends += save.versions.length;
      if (n !== save.versions.length) violations.push(`save ${save.key}: acknowledged but not stored`);
    } else if (save.outcome === 'unknown') {
      if (n > 0) unknownApplied++;
    } else if (n > 0) {
      violations.push(`save ${save.key}: ${save.outcome} but stored`);
    }
  }
  // The store's own reading agrees with the documents.
  const fresh = new CosmosEventStore(direct.database(database.id).container('events'));
  for (const aggregate of aggregates) {
    const { records } = await fresh.load(aggregate);
    const expected = [...stored.get(aggregate)!.entries()].sort(([a], [b]) => a - b).map(([, d]) => d);
    if (JSON.stringify(records.map((r) => decode(r.data))) !== JSON.stringify(expected)) violations.push(`${aggregate}: load differs`);
  }

  const batches = proxies.reduce((n, p) => n + p.count({ kind: 'batch' }), 0);
  const faults = proxies.reduce((n, p) => n + p.count((r) => r.fault !== undefined && r.fault !== 'latency'), 0);
  const lostAcks = proxies.reduce(
    (n, p) => n + p.count((r) => r.kind === 'batch' && r.upstreamStatus !== undefined && (r.status === 'reset' || r.status === 503 || r.status === 408)),
    0,
  );
  const echoResolved = [...saves.values()].filter((s) => s.outcome === 'acknowledged' && s.echoResolved).length;
  const report = {
    elapsedMs,
    endedBy,
    saves: saves.size,
    appends,
    acknowledgedSaves: counts.acknowledged,
    acknowledgedAppends,
    conflicts: counts.conflict,
    unknownOutcomes: counts.unknown,
    unknownOutcomesApplied: unknownApplied,
    otherFailures: counts.failed,
    batchRequests: batches,
    retries: batches - saves.size,
    faultsInjected: faults,
    lostAcknowledgements: lostAcks,
    ambiguousResolved: echoResolved,
    readerLoads,
    partialSightings,
    loadFailures,
    storedEvents: [...stored.values()].reduce((n, m) => n + m.size, 0),
  };
  console.log(`torture: ${JSON.stringify(report, null, 1)}`);

  expect(violations).toEqual([]);
  expect(partialSightings).toBe(0);
  // The run must have exercised what it claims to: contention, lost acknowledgements resolved, retries.
  // It ran its whole budget (the safety deadline ending it means a stuck run, not a slow machine).
  expect(endedBy).toBe('append budget');
  expect(appends).toBeGreaterThanOrEqual(1500);
  expect(counts.acknowledged).toBeGreaterThan(100);
  expect(counts.conflict).toBeGreaterThan(10);
  expect(echoResolved).toBeGreaterThan(5);
  expect(report.retries).toBeGreaterThan(50);
  expect(report.storedEvents).toBe(acknowledgedAppends + [...saves.values()].filter((s) => s.outcome === 'unknown').reduce((n, s) => n + (storedPerSave.get(s.key) ?? 0), 0));
}, SAFETY_DEADLINE_MS + 120_000);
