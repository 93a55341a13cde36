/**
 * Events per second of one consumer group with 1, 2 and 4 instances on a container of ONE physical partition
 * (8 sub-range leases), as a ratio against 1 instance measured in the same run. The instances run in this
 * process (each its own `SubscriptionsManager`, as separate services would), against the embedded server in
 * a child process. Each instance handles one event at a time, 2 ms each, across all the leases it holds: a
 * stand-in for one process's capacity (its CPU, its connections), which is what more instances add on a real
 * account. Each run starts its instances on a fresh container, waits until the leases are shared out, then
 * writes the events and measures until all are handled.
 */
import { Logger } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { CosmosEventStore, OnStoredEvent, Subscriber } from '../src/index.js';
import { ensureContainer } from '../src/modules/cosmos/index.js';
import { SubscriptionsManager } from '../src/modules/subscriptions/subscriptions-manager.js';
import { freshContainers, startServerProcess } from './embedded-process.js';
import { printTable, ratio } from './support.js';

const AGGREGATES = 100;
const VERSIONS = Number(process.env.BENCH_SUBSCRIPTION_VERSIONS ?? 40);
const HANDLER_MS = 2;

let handled = 0;

@Subscriber({ name: 'bench', maxItemCount: 50 })
class Counting {
  /** One event at a time per instance, whatever leases it reads: an instance's capacity, as a process's CPU. */
  private turn: Promise<void> = Promise.resolve();

  @OnStoredEvent()
  async handle(): Promise<void> {
    const mine = this.turn.then(() => sleep(HANDLER_MS));
    this.turn = mine;
    await mine;
    handled++;
  }
}

export default async function (): Promise<void> {
  Logger.overrideLogger(['error']);
  const server = await startServerProcess();
  try {
    const total = AGGREGATES * VERSIONS;
    const rates = new Map<number, number>();
    for (const count of [1, 2, 4]) {
      // A fresh database per run: the instances start on an empty container, share the leases out, and only
      // then are the events written, so that what is measured is the shared work, not the start-up balancing.
      const { client, events } = await freshContainers(server, `subscriptions-${count}`);
      await ensureContainer(events.database, 'leases', '/group', 'the benchmark');
      const leases = events.database.container('leases');
      handled = 0;
      const managers = Array.from(
        { length: count },
        (_, i) =>
          new SubscriptionsManager(events, leases, {
            instanceId: `i${i}`,
            leases: 8,
            ensure: false,
            leaseDurationMs: 3_000,
            renewIntervalMs: 100,
            pollIntervalMs: 10,
          }),
      );
      for (const manager of managers) manager.register(new Counting());
      await Promise.all(managers.map((m) => m.start()));
      while (!managers.every((m) => m.status()[0].ownedRanges.length === 8 / count)) await sleep(10);
      const start = performance.now();
      const store = new CosmosEventStore(events);
      await Promise.all(
        Array.from({ length: AGGREGATES }, async (_, a) => {
          for (let v = 1; v <= VERSIONS; v += 10) {
            await store.save(
              `Bench/${a}`,
              Array.from({ length: Math.min(10, VERSIONS - v + 1) }, (_, i) => ({ version: v + i, data: new Uint8Array(16) })),
            );
          }
        }),
      );
      while (handled < total) await sleep(5);
      rates.set(count, total / ((performance.now() - start) / 1000));
      await Promise.all(managers.map((m) => m.stop()));
      client.dispose();
    }
    const base = rates.get(1)!;
    printTable([
      ['instances', 'events/s', 'vs 1 instance'],
      ...[1, 2, 4].map((n) => [n, Math.round(rates.get(n)!), ratio(rates.get(n)!, base)]),
    ]);
  } finally {
    await server.close();
  }
}
