/*
 * Truncating a repository's stream (issue 16's truncation, made safe for repositories): truncate(id) writes a
 * snapshot of the current state as the next version and cuts before it, so the stream alone still gives the
 * state, whatever reads it (the tip, the stream with snapshots on or off, a subscriber replaying it). On the
 * in-memory stores and the embedded server, with the tip and without it.
 */
import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import {
  Aggregate,
  AggregateNotFoundError,
  AggregateRepository,
  SNAPSHOT_EVENT_TYPE,
  UnreadableStreamError,
  type RepositoryOptions,
  type StreamLifecycleStore,
} from '../../src/index.js';
import { AddLine, Order, PlaceOrder, RemoveLine } from '../../example/src/modules/orders/index.js';
import { storeSuites, type StoresUnderTest } from './story-stores.js';

/** The same orders with snapshots off: a stream that does not start at version 1 must still be read from its snapshot. */
@Aggregate({ type: 'Order', snapshotEvery: undefined, schemaVersion: 2 })
class UnsnappedOrder extends Order {}

const stateOf = (order: Order) => ({ customerId: order.customerId, status: order.status, lines: order.lines, total: order.total });

describe.each(storeSuites())('%s', (_storeName, makeStores) => {
  describe.each([
    ['with the tip', {}],
    ['without the tip', { tip: false }],
  ] as Array<[string, RepositoryOptions]>)('%s', (_mode, options) => {
    let stores: StoresUnderTest;
    const open = <A extends Order>(type: new () => A = Order as unknown as new () => A, opts: RepositoryOptions = options) =>
      new AggregateRepository(type, { events: stores.events, aggregates: stores.events, opaque: stores.opaque }, opts);

    it('truncate keeps the state: a snapshot first, then the events before it go; commands go on', async () => {
      stores = makeStores();
      const orders = open();
      const id = `truncate-${randomUUID()}`;
      await orders.apply(new PlaceOrder(id, 'c-1'));
      await orders.apply(new AddLine(id, 'tea', 2, 3));
      await orders.apply(new AddLine(id, 'cake', 1, 1));
      await orders.apply(new RemoveLine(id, 'tea'));
      const before = stateOf(await orders.load(id));

      expect(await orders.truncate(id, { actor: 'admin' })).toBe(5);

      const { records } = await stores.events.load(orders.streamId(id));
      expect(records.map((r) => [r.version, r.type])).toEqual([[5, SNAPSHOT_EVENT_TYPE]]);
      for (const reader of [orders, open(), open(Order, { tip: false }), open(UnsnappedOrder, { tip: false })]) {
        const order = await reader.load(id);
        expect(order.version).toBe(5);
        expect(stateOf(order)).toEqual(before);
        expect(stateOf(await reader.loadAt(id, { toVersion: 5 }))).toEqual(before);
        await expect(reader.loadAt(id, { toVersion: 4 })).rejects.toBeInstanceOf(UnreadableStreamError);
      }
      expect((await orders.get(id)).version).toBe(5);
      expect(await orders.history(id)).toEqual([]);

      expect(await orders.apply(new AddLine(id, 'jam', 1, 4))).toBe(6);
      expect((await orders.history(id)).map((e) => [e.version, e.type])).toEqual([[6, 'LineAdded']]);
      expect(stateOf(await open(UnsnappedOrder, { tip: false }).load(id)).lines.map((l) => l.sku)).toEqual(['cake', 'jam']);
      // Truncating again snapshots the newer state.
      expect(await orders.truncate(id)).toBe(7);
      expect((await stores.events.load(orders.streamId(id))).records.map((r) => r.version)).toEqual([7]);
      expect(stateOf(await open(UnsnappedOrder, { tip: false }).load(id)).lines.map((l) => l.sku)).toEqual(['cake', 'jam']);
    });

    it('truncate repairs a stream cut by the store alone: the state left in the tip is snapshotted', async () => {
      if (options.tip === false) return; // without the tip nothing holds the state any more
      stores = makeStores();
      const orders = open();
      const id = `recut-${randomUUID()}`;
      await orders.apply(new PlaceOrder(id, 'c-2'));
      await orders.apply(new AddLine(id, 'tea', 2, 3));
      await orders.apply(new AddLine(id, 'cake', 1, 1));
      await (stores.events as unknown as StreamLifecycleStore).truncateBefore(orders.streamId(id), 3);
      await expect(open(Order, { tip: false }).load(id)).rejects.toBeInstanceOf(UnreadableStreamError);

      expect(await orders.truncate(id)).toBe(4);
      expect(stateOf(await open(Order, { tip: false }).load(id))).toEqual(stateOf(await orders.load(id)));
    });

    it('truncate of an unknown aggregate is AggregateNotFoundError', async () => {
      stores = makeStores();
      await expect(open().truncate(`none-${randomUUID()}`)).rejects.toBeInstanceOf(AggregateNotFoundError);
    });
  });
});
