/*
 * The tip keeps the aggregate's state as JSON, so a state whose JSON restores as something else (a Map as {},
 * a Date as a string) is refused before anything is stored, naming the field: stored, it would come back
 * wrong from every later read. With restoreSnapshot overridden to rebuild the Map, the same aggregate works.
 */
import { Aggregate, AggregateRepository, AggregateRoot, Command, On, ValidationError } from '../../src/index.js';
import { InMemoryEventStore, InMemoryOpaqueStore } from '../../src/testing.js';

class Added {
  constructor(
    readonly sku: string,
    readonly quantity: number,
  ) {}
}

@Aggregate({ type: 'Cart' })
class Cart extends AggregateRoot {
  lines = new Map<string, number>();
  @On(Added) onAdded(e: Added): void {
    this.lines.set(e.sku, (this.lines.get(e.sku) ?? 0) + e.quantity);
  }
}

@Aggregate({ type: 'CartWithRestore' })
class CartWithRestore extends Cart {
  override restoreSnapshot(state: Record<string, unknown>): void {
    super.restoreSnapshot(state);
    this.lines = new Map(Object.entries((state.lines ?? {}) as Record<string, number>));
  }
  toJSON(): object {
    return { ...this, lines: Object.fromEntries(this.lines) };
  }
}

class Add<A extends Cart> extends Command<A> {
  constructor(
    readonly aggregateId: string,
    readonly lifecycle: 'create' | 'mutate' = 'mutate',
  ) {
    super();
  }
  emit(): Added {
    return new Added('book', 1);
  }
}

function repository<A extends Cart>(cls: new () => A): AggregateRepository<A> {
  const opaque = new InMemoryOpaqueStore();
  const events = new InMemoryEventStore({ opaqueStore: opaque });
  return new AggregateRepository(cls, { events, aggregates: events, opaque });
}

it('refuses a state whose JSON does not restore it (a Map), naming the field, and stores nothing', async () => {
  const carts = repository(Cart);
  const err = await carts.apply(new Add('c-1', 'create')).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ValidationError);
  expect((err as ValidationError).field).toBe('state.lines');
  expect(await carts.history('c-1').catch(() => [])).toEqual([]);
});

it('accepts it once restoreSnapshot rebuilds the Map: later commands and reads see the lines', async () => {
  const carts = repository(CartWithRestore);
  await carts.apply(new Add('c-2', 'create'));
  await carts.apply(new Add('c-2'));
  expect((await carts.get('c-2')).lines).toEqual(new Map([['book', 2]]));
});
