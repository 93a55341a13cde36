/*
 * An erase that races a command on the same aggregate wins for good: once `erase` resolves, neither the
 * command's events, its tip nor its materialized view is readable (get, query, history), and commands after
 * it find nothing. In one process (one repository: erase queues behind the aggregate's commands) and across
 * processes (two repositories on the same stores: the tombstone refuses the command's batch, and a view the
 * command creates after the erase is taken back). On the in-memory stores and the embedded server.
 */
import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { AggregateNotFoundError, AggregateRepository, type RepositoryOptions } from '../../src/index.js';
import { AddLine, Order, PlaceOrder } from '../../example/src/modules/orders/index.js';
import { storeSuites, type StoresUnderTest } from './story-stores.js';

const ROUNDS = 12;

describe.each(storeSuites())('%s', (_storeName, makeStores) => {
  describe.each([
    ['with the tip', {}],
    ['without the tip', { tip: false }],
  ] as Array<[string, RepositoryOptions]>)('%s', (_mode, options) => {
    const repository = (stores: StoresUnderTest) =>
      new AggregateRepository(Order, { events: stores.events, aggregates: stores.events, opaque: stores.opaque }, options);

    /** Everything a reader could find of the order: none of it may be there once the erase resolved. */
    async function expectGone(orders: AggregateRepository<Order>, stores: StoresUnderTest, id: string, customerId: string): Promise<void> {
      await expect(orders.get(id)).rejects.toBeInstanceOf(AggregateNotFoundError);
      expect((await orders.load(id)).version).toBe(0);
      expect(await orders.history(id)).toEqual([]);
      const { pk, sk } = Object.assign(new Order(), { id }).keys();
      await expect(stores.opaque.get(pk, sk)).rejects.toThrow();
      expect((await orders.query({ index: 1, pk: customerId, limit: 10 })).items).toEqual([]);
      await expect(orders.apply(new AddLine(id, 'late', 1, 1))).rejects.toBeInstanceOf(AggregateNotFoundError);
    }

    /** Rounds of `commands` concurrent commands and an erase, each on a fresh order; `eraser` may be another instance. */
    async function race(commands: number, twoInstances: boolean): Promise<void> {
      const stores = makeStores();
      const orders = repository(stores);
      const eraser = twoInstances ? repository(stores) : orders;
      for (let round = 0; round < ROUNDS; round++) {
        const id = `race-${randomUUID()}`;
        const customerId = `c-${randomUUID()}`;
        await orders.apply(new PlaceOrder(id, customerId));
        // Warm the instance's caches (tip, view etag) as a busy service has them.
        await orders.apply(new AddLine(id, 'tea', 1, 2));
        const [erased] = await Promise.all([
          eraser.erase(id),
          // A command may lose to the erase (not found, or out of retries): what matters is what is left.
          ...Array.from({ length: commands }, (_, i) => orders.apply(new AddLine(id, `sku-${i}`, 1, 1)).catch(() => undefined)),
        ]);
        expect(erased).toBe(true);
        await expectGone(orders, stores, id, customerId);
        if (twoInstances) await expectGone(eraser, stores, id, customerId);
      }
    }

    it('a view left behind after the erase (its instance died before taking it back) is not answered by get, which deletes it', async () => {
      const stores = makeStores();
      const orders = repository(stores);
      const id = `left-${randomUUID()}`;
      await orders.apply(new PlaceOrder(id, `c-${randomUUID()}`));
      await orders.apply(new AddLine(id, 'tea', 1, 2));
      const order = await orders.load(id);
      await orders.erase(id);
      // What a command of another instance writes after the erase, had it died before its check.
      const { pk, sk } = order.keys();
      await stores.opaque.put({ pk, sk, version: order.version, body: new TextEncoder().encode(JSON.stringify({ ...order, $type: orders.type })) });
      await expect(repository(stores).get(id)).rejects.toBeInstanceOf(AggregateNotFoundError);
      // That read took the view away: queries no longer list it.
      expect((await orders.query({ index: 1, pk: order.customerId, limit: 10 })).items).toEqual([]);
      await expect(orders.get(id)).rejects.toBeInstanceOf(AggregateNotFoundError);
    });

    it('one command racing an erase in the same instance leaves nothing readable', () => race(1, false));
    it('ten commands racing an erase in the same instance leave nothing readable', () => race(10, false));
    it('a command of another instance racing the erase leaves nothing readable', () => race(1, true));
    it('ten commands of another instance racing the erase leave nothing readable', () => race(10, true));
  });
});
