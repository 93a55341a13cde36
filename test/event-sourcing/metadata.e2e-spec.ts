/*
 * Issue 16 part 1: every event the repository stores carries its story (eventId, correlationId, causationId,
 * optional headers) in the JSON envelope, from the event context it ran in; history shows it; envelopes
 * stored before metadata existed still decode. On the in-memory stores and on the embedded server.
 */
import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import {
  Aggregate,
  AggregateRoot,
  Command,
  JsonEventSerializer,
  On,
  AggregateRepository,
  runInHandlerContext,
  runWithEventContext,
  SNAPSHOT_EVENT_TYPE,
  type EventEnvelope,
} from '../../src/index.js';
import { storeSuites, type StoresUnderTest } from './story-stores.js';

class TabOpened {
  constructor(readonly table: number) {}
}
class DrinkOrdered {
  constructor(readonly drink: string) {}
}

@Aggregate({ type: 'MetaTab', snapshotEvery: 3 })
class Tab extends AggregateRoot {
  table = 0;
  drinks: string[] = [];
  @On(TabOpened) onOpened(e: TabOpened): void {
    this.table = e.table;
  }
  @On(DrinkOrdered) onOrdered(e: DrinkOrdered): void {
    this.drinks.push(e.drink);
  }
}

class OpenTab extends Command<Tab> {
  readonly lifecycle = 'create';
  constructor(readonly aggregateId: string) {
    super();
  }
  emit(): TabOpened {
    return new TabOpened(7);
  }
}

/** Orders the drinks in one command: one event each. */
class OrderDrinks extends Command<Tab> {
  readonly lifecycle = 'mutate';
  constructor(
    readonly aggregateId: string,
    readonly drinks: string[],
  ) {
    super();
  }
  emit(): DrinkOrdered[] {
    return this.drinks.map((d) => new DrinkOrdered(d));
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const serializer = new JsonEventSerializer();

describe.each(storeSuites())('event metadata (%s)', (_name, makeStores) => {
  function setUp(): { tabs: AggregateRepository<Tab>; stores: StoresUnderTest; stored: (id: string) => Promise<EventEnvelope[]> } {
    const stores = makeStores();
    // Without a tip, so that snapshots are records of the stream (with one, the state lives in the tip).
    const tabs = new AggregateRepository(Tab, { events: stores.events, aggregates: stores.events, opaque: stores.opaque }, { logger: { warn: () => undefined }, tip: false });
    const stored = async (id: string) => (await stores.events.load(tabs.streamId(id))).records.map((r) => serializer.deserializeStored(r.data));
    return { tabs, stores, stored };
  }

  it('stores an eventId per event and one correlation per command; outside a context the command starts its own story', async () => {
    const { tabs, stored } = setUp();
    const id = `tab-${randomUUID()}`;
    await tabs.apply(new OpenTab(id));
    await tabs.apply(new OrderDrinks(id, ['tea', 'coffee']));
    const all = await stored(id);
    const [opened, tea, coffee] = all.filter((e) => e.type !== SNAPSHOT_EVENT_TYPE);
    const snapshot = all.find((e) => e.type === SNAPSHOT_EVENT_TYPE);
    for (const e of [opened, tea, coffee]) {
      expect(e.eventId).toMatch(UUID);
      expect(e.correlationId).toMatch(UUID);
      // A story's first command: caused by the story itself.
      expect(e.causationId).toBe(e.correlationId);
      expect(e.headers).toBeUndefined();
    }
    expect(new Set([opened.eventId, tea.eventId, coffee.eventId]).size).toBe(3);
    expect(tea.correlationId).toBe(coffee.correlationId);
    expect(tea.correlationId).not.toBe(opened.correlationId);
    // The snapshot at version 3 carries the aggregate's schema version.
    expect(snapshot).toMatchObject({ type: SNAPSHOT_EVENT_TYPE, version: 3, schemaVersion: 1 });
  });

  it('takes correlation, causation and headers from runWithEventContext, across the awaits of a command', async () => {
    const { tabs, stored } = setUp();
    const id = `tab-${randomUUID()}`;
    const headers = { tenant: 'acme', client: 'pos-3' };
    await runWithEventContext({ correlationId: 'req-42', causationId: 'cmd-1', headers }, async () => {
      await tabs.apply(new OpenTab(id));
      await new Promise((resolve) => setTimeout(resolve, 1));
      await tabs.apply(new OrderDrinks(id, ['tea']));
    });
    const events = (await stored(id)).filter((e) => e.type !== SNAPSHOT_EVENT_TYPE);
    expect(events.map((e) => [e.correlationId, e.causationId, e.headers])).toEqual([
      ['req-42', 'cmd-1', headers],
      ['req-42', 'cmd-1', headers],
    ]);
    // Outside it again: a fresh story.
    await tabs.apply(new OrderDrinks(id, ['water']));
    const last = (await stored(id)).at(-1)!;
    expect(last.correlationId).not.toBe('req-42');
  });

  it('continues the handled event\'s story in a command a subscriber handler issues, with nothing passed by the handler', async () => {
    const { tabs, stores, stored } = setUp();
    const source = `tab-${randomUUID()}`;
    const reaction = `tab-${randomUUID()}`;
    await runWithEventContext({ correlationId: 'checkout-9' }, () => tabs.apply(new OpenTab(source)));
    // As the subscriptions runtime hands it over: the stream, the version, the decoded envelope.
    const [record] = (await stores.events.load(tabs.streamId(source))).records;
    const handled = { aggregateId: tabs.streamId(source), version: record.version, event: serializer.deserialize(record.data) };
    const handler = async () => {
      await tabs.apply(new OpenTab(reaction));
    };
    await runInHandlerContext(handled, handler);
    const [caused] = await stored(reaction);
    expect(caused.correlationId).toBe('checkout-9');
    expect(caused.causationId).toBe(handled.event.eventId);
    // And the history shows the chain.
    const [sourceEvent] = await tabs.history(source);
    const [reactionEvent] = await tabs.history(reaction);
    expect(reactionEvent).toMatchObject({ correlationId: sourceEvent.correlationId, causationId: sourceEvent.eventId });
  });

  it('stands an event stored before metadata in for its id by stream and version', async () => {
    const { tabs, stored } = setUp();
    const reaction = `tab-${randomUUID()}`;
    const old: EventEnvelope = { type: 'TabOpened', aggregateId: 'x', version: 1, at: 1_700_000_000_000_000, actor: 'old', payload: { table: 1 } };
    await runInHandlerContext({ aggregateId: 'MetaTab/x', version: 1, event: old }, () => tabs.apply(new OpenTab(reaction)));
    const [caused] = await stored(reaction);
    expect(caused).toMatchObject({ correlationId: 'MetaTab/x@1', causationId: 'MetaTab/x@1' });
  });

  it('shows the metadata in history, and decodes envelopes stored before it existed', async () => {
    const { tabs, stores } = setUp();
    const id = `tab-${randomUUID()}`;
    // Exactly as the code before metadata wrote them: no eventId, correlationId, causationId, schemaVersion.
    const old = (version: number, type: string, payload: unknown) =>
      Buffer.from(JSON.stringify({ type, aggregateId: id, version, at: 1_700_000_000_000_000 + version, actor: 'old', payload }));
    await stores.events.save(tabs.streamId(id), [
      { version: 1, data: old(1, 'TabOpened', { table: 4 }) },
      { version: 2, data: old(2, 'DrinkOrdered', { drink: 'tea' }) },
    ]);
    await runWithEventContext({ correlationId: 'later', headers: { tenant: 'acme' } }, () => tabs.apply(new OrderDrinks(id, ['juice'])));
    const history = await tabs.history(id);
    expect(history.map((e) => [e.version, e.eventId, e.correlationId, e.causationId])).toEqual([
      [1, undefined, undefined, undefined],
      [2, undefined, undefined, undefined],
      [3, expect.stringMatching(UUID), 'later', 'later'],
    ]);
    expect(history[2].headers).toEqual({ tenant: 'acme' });
    expect(await tabs.load(id)).toMatchObject({ table: 4, drinks: ['tea', 'juice'], version: 3 });
  });
});
