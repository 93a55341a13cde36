/*
 * Issue 16 part 5 at repository level: erase(id) takes the events, the tip with its idempotency keys and the
 * materialized documents, leaves a tombstone for subscribers, and a create of the erased id is refused;
 * loadAt(id, { toVersion }) builds the state as of a version. On the in-memory stores and the embedded server,
 * with the tip and without it.
 */
import { describe, expect, it, jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import {
  AggregateAlreadyExistsError,
  AggregateNotFoundError,
  AggregateRepository,
  STREAM_DELETED_TYPE,
  UnreadableStreamError,
  ValidationError,
  type RepositoryOptions,
  type StreamLifecycleStore,
  type TipStore,
} from '../../src/index.js';
import { AddLine, Order, PlaceOrder, RemoveLine, SubmitOrder } from '../../example/src/modules/orders/index.js';
import { storeSuites, type StoresUnderTest } from './story-stores.js';

describe.each(storeSuites())('%s', (storeName, makeStores) => {
  describe.each([
    ['with the tip', {}],
    ['without the tip', { tip: false }],
  ] as Array<[string, RepositoryOptions]>)('%s', (_mode, options) => {
    let stores: StoresUnderTest;
    const open = () => {
      stores = makeStores();
      return new AggregateRepository(Order, { events: stores.events, aggregates: stores.events, opaque: stores.opaque }, options);
    };

    it('erase takes the events, the tip and the materialized documents; the id reads as unknown', async () => {
      const orders = open();
      const id = `erase-${randomUUID()}`;
      const customerId = `c-${randomUUID()}`;
      await orders.apply(new PlaceOrder(id, customerId), { ...(options.tip !== false && { idempotencyKey: 'k-1' }) });
      await orders.apply(new AddLine(id, 'tea', 2, 3));
      expect((await orders.query({ index: 1, pk: customerId, limit: 10 })).items.map((o) => o.id)).toEqual([id]);

      expect(await orders.erase(id)).toBe(true);

      expect((await orders.load(id)).version).toBe(0);
      await expect(orders.get(id)).rejects.toBeInstanceOf(AggregateNotFoundError);
      expect(await orders.history(id)).toEqual([]);
      expect((await orders.query({ index: 1, pk: customerId, limit: 10 })).items).toEqual([]);
      await expect(orders.apply(new AddLine(id, 'cake', 1, 1))).rejects.toBeInstanceOf(AggregateNotFoundError);
      // Nothing of the stream is left but the tombstone (and its stub): no event, no tip, no idempotency key.
      const { records } = await stores.events.load(orders.streamId(id));
      expect(records.map((r) => [r.version, r.type])).toEqual([[3, STREAM_DELETED_TYPE]]);
      if (options.tip !== false) expect(await (stores.events as unknown as TipStore).readTip(orders.streamId(id))).toBeUndefined();
      // The main document is gone from the aggregates container too.
      const { pk, sk } = Object.assign(new Order(), { id }).keys();
      await expect(stores.opaque.get(pk, sk)).rejects.toThrow();
    });

    it('erase works on a stream that cannot be replayed any more (truncated): events, tip and main view go', async () => {
      const orders = open();
      const id = `trunc-erase-${randomUUID()}`;
      await orders.apply(new PlaceOrder(id, `c-${randomUUID()}`));
      await orders.apply(new AddLine(id, 'tea', 2, 3));
      await orders.apply(new AddLine(id, 'cake', 1, 1));
      await orders.apply(new RemoveLine(id, 'tea'));
      await (stores.events as unknown as StreamLifecycleStore).truncateBefore(orders.streamId(id), 3);

      expect(await orders.erase(id)).toBe(true);

      const { records } = await stores.events.load(orders.streamId(id));
      expect(records.map((r) => r.type)).toEqual([STREAM_DELETED_TYPE]);
      if (options.tip !== false) expect(await (stores.events as unknown as TipStore).readTip(orders.streamId(id))).toBeUndefined();
      const { pk, sk } = Object.assign(new Order(), { id }).keys();
      await expect(stores.opaque.get(pk, sk)).rejects.toThrow();
    });

    it('a create of an erased id is refused as already existing, also with the same idempotency key', async () => {
      const orders = open();
      const id = `recreate-${randomUUID()}`;
      await orders.apply(new PlaceOrder(id, 'c'));
      await orders.erase(id);
      await expect(orders.apply(new PlaceOrder(id, 'c'))).rejects.toBeInstanceOf(AggregateAlreadyExistsError);
      // Another repository (another instance, no cache) refuses it too.
      const other = new AggregateRepository(Order, { events: stores.events, aggregates: stores.events, opaque: stores.opaque }, options);
      await expect(other.apply(new PlaceOrder(id, 'c'))).rejects.toBeInstanceOf(AggregateAlreadyExistsError);
      expect((await other.load(id)).version).toBe(0);
    });

    it('an application that opts in can create an erased id again once the tombstone has expired (the in-memory store purges as Cosmos DB would)', async () => {
      if (storeName !== 'in-memory stores') return; // the embedded server does not purge expired documents
      const opened = () => new AggregateRepository(Order, { events: stores.events, aggregates: stores.events, opaque: stores.opaque }, { ...options, recreateErasedAfterSeconds: 60 });
      open();
      const orders = opened();
      const id = `again-${randomUUID()}`;
      await orders.apply(new PlaceOrder(id, 'c'));
      // Two more events: the re-created order stays below the tombstone's version 4, which the in-memory
      // store keeps in its map after expiry (Cosmos DB purges it).
      await orders.apply(new AddLine(id, 'tea', 1, 1));
      await orders.apply(new AddLine(id, 'cake', 1, 1));
      await orders.erase(id);
      // While the tombstone lasts: refused, as by default.
      await expect(orders.apply(new PlaceOrder(id, 'c'))).rejects.toBeInstanceOf(AggregateAlreadyExistsError);
      const now = Date.now();
      const clock = jest.spyOn(Date, 'now').mockReturnValue(now + 61_000);
      try {
        expect(await opened().apply(new PlaceOrder(id, 'd'))).toBe(1);
        expect(await opened().apply(new AddLine(id, 'tea', 1, 1))).toBe(2);
        const order = await opened().load(id);
        expect([order.version, order.customerId]).toEqual([2, 'd']);
      } finally {
        clock.mockRestore();
      }
    });

    it('refuses a recreateErasedAfterSeconds that is not a positive integer', () => {
      open();
      for (const bad of [0, -1, 1.5]) {
        expect(() => new AggregateRepository(Order, { events: stores.events, aggregates: stores.events, opaque: stores.opaque }, { recreateErasedAfterSeconds: bad })).toThrow(ValidationError);
      }
    });

    it('erasing an unknown or an erased id is a no-op answering false, and leaves no tombstone of its own', async () => {
      const orders = open();
      const id = `none-${randomUUID()}`;
      expect(await orders.erase(id)).toBe(false);
      expect((await stores.events.load(orders.streamId(id))).records).toEqual([]);
      await orders.apply(new PlaceOrder(id, 'c'));
      expect(await orders.erase(id)).toBe(true);
      expect(await orders.erase(id)).toBe(false);
      expect((await stores.events.load(orders.streamId(id))).records.map((r) => r.version)).toEqual([2]);
    });

    it('loadAt builds the state as of each version, and the current state past the last', async () => {
      const orders = open();
      const id = `at-${randomUUID()}`;
      await orders.apply(new PlaceOrder(id, 'c'));
      await orders.apply(new AddLine(id, 'tea', 2, 3));
      await orders.apply(new AddLine(id, 'cake', 1, 4.5));
      await orders.apply(new RemoveLine(id, 'tea'));
      await orders.apply(new SubmitOrder(id));
      const states = await Promise.all([0, 1, 2, 3, 4, 5, 9].map((toVersion) => orders.loadAt(id, { toVersion })));
      expect(states.map((o) => [o.version, o.status, o.lines.map((l) => `${l.sku}x${l.quantity}`).join(','), o.total])).toEqual([
        [0, 'open', '', '0.00'],
        [1, 'open', '', '0.00'],
        [2, 'open', 'teax2', '6.00'],
        [3, 'open', 'teax2,cakex1', '10.50'],
        [4, 'open', 'cakex1', '4.50'],
        [5, 'submitted', 'cakex1', '4.50'],
        [5, 'submitted', 'cakex1', '4.50'],
      ]);
      expect(states[2].customerId).toBe('c');
      // The current state is the same as load's.
      expect(JSON.stringify(states[6])).toBe(JSON.stringify(await orders.load(id)));
      for (const toVersion of [-1, 1.5, Number.NaN]) {
        await expect(orders.loadAt(id, { toVersion })).rejects.toBeInstanceOf(ValidationError);
      }
    });

    it('loadAt cannot go back past a truncation: an error naming the stream, never a wrong state', async () => {
      const orders = open();
      const id = `cut-${randomUUID()}`;
      await orders.apply(new PlaceOrder(id, 'c'));
      for (let i = 0; i < 4; i++) await orders.apply(new AddLine(id, `s${i}`, 1, 1));
      await (stores.events as unknown as StreamLifecycleStore).truncateBefore(orders.streamId(id), 3);
      await expect(orders.loadAt(id, { toVersion: 4 })).rejects.toBeInstanceOf(UnreadableStreamError);
    });
  });
});
