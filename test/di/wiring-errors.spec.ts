/*
 * A module imported without what it needs fails with an error naming the missing import, not Nest's
 * generic "can't resolve dependencies of Symbol(...)", which points into the library's own modules.
 */
import { Module, type DynamicModule } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Aggregate, AggregateRoot, EventSourcingModule, EventStoreModule, SubscriptionsModule } from '../../src/index.js';
import { ProtosourceModule } from '../../src/protosource.js';
import { orderDefinition } from '../../example/src/modules/protosource-orders/order.domain.js';

@Aggregate({ type: 'Thing' })
class Thing extends AggregateRoot {}

async function startupError(imports: DynamicModule[]): Promise<string> {
  @Module({ imports })
  class Root {}
  const ref = await Test.createTestingModule({ imports: [Root] })
    .compile()
    .catch((err: unknown) => err as Error);
  if (ref instanceof Error) return ref.message;
  await ref.close();
  throw new Error('the module compiled');
}

describe('wiring mistakes', () => {
  it('EventStoreModule.forRoot() without CosmosModule names CosmosModule', async () => {
    const message = await startupError([EventStoreModule.forRoot()]);
    expect(message).toMatch(/^EventStoreModule needs the Cosmos DB (events|aggregates) container: import CosmosModule.forRoot\(\)/);
    expect(message).toContain('EventStoreModule.inMemory()');
  });

  it('EventSourcingModule.forFeature without the event store names EventStoreModule', async () => {
    const message = await startupError([EventSourcingModule.forFeature([Thing])]);
    expect(message).toMatch(/^EventSourcingModule.forFeature\(\[Thing\]\) needs the event store: import EventStoreModule.forRoot\(\)/);
  });

  it('ProtosourceModule.forFeature without the event store names EventStoreModule', async () => {
    const message = await startupError([ProtosourceModule.forFeature([orderDefinition])]);
    expect(message).toMatch(/^ProtosourceModule.forFeature\(\[Order\]\) needs the event store: import EventStoreModule.forRoot\(\)/);
  });

  it('SubscriptionsModule.forRoot() without CosmosModule names CosmosModule', async () => {
    const message = await startupError([SubscriptionsModule.forRoot()]);
    expect(message).toMatch(/^SubscriptionsModule.forRoot\(\) reads the events container: import CosmosModule.forRoot\(\)/);
  });

  it('EventSourcingModule.forFeature beside EventStoreModule.inMemory() needs nothing else', async () => {
    @Module({ imports: [EventStoreModule.inMemory(), EventSourcingModule.forFeature([Thing])] })
    class Root {}
    const ref = await Test.createTestingModule({ imports: [Root] }).compile();
    await ref.close();
  });
});
