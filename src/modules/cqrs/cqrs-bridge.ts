import { Inject, Injectable, Logger, Optional, type OnModuleDestroy, type Type } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { CommandBus, type ICommand, type IEvent, type IEventHandler } from '@nestjs/cqrs';
import { Subject, type Observable, type Subscription } from 'rxjs';
import type { EventClass } from '../event-sourcing/index.js';
import type { SubscribedEvent } from '../subscriptions/index.js';

// @nestjs/cqrs's metadata keys (`EVENTS_HANDLER_METADATA`, `SAGA_METADATA`), which its entry does not export.
const EVENTS_HANDLER_METADATA = '__eventsHandler__';
const SAGA_METADATA = '__saga__';

/** Token of the bridge's settings inside its module. */
export const CQRS_BRIDGE_EVENTS = Symbol('CQRS_BRIDGE_EVENTS');

type Saga = (events$: Observable<IEvent>) => Observable<ICommand | undefined | null>;

/**
 * Hands each event the bridge's subscription delivers to the app's `@EventsHandler`s of its class, one after
 * the other, awaiting each: a handler that throws fails the delivery, which the subscription retries (and
 * dead-letters or stops on, by its policy) before it checkpoints. Then it feeds the event to every `@Saga`,
 * whose commands go to the `CommandBus`.
 */
@Injectable()
export class CqrsEventDispatcher implements OnModuleDestroy {
  private readonly logger = new Logger('CqrsBridge');
  private handlers?: Map<EventClass, IEventHandler[]>;
  private readonly sagaInput = new Subject<IEvent>();
  private readonly sagaSubscriptions: Subscription[] = [];

  constructor(
    private readonly discovery: DiscoveryService,
    @Inject(CQRS_BRIDGE_EVENTS) private readonly events: readonly EventClass[],
    @Optional() private readonly commandBus?: CommandBus,
  ) {}

  /** Runs the handlers of `event`'s class, then passes it to the sagas. */
  async dispatch(event: object, context: SubscribedEvent<never>): Promise<void> {
    const handlers = this.discover().get(event.constructor as EventClass) ?? [];
    for (const handler of handlers) {
      try {
        await handler.handle(event);
      } catch (err) {
        this.logger.warn(
          `${handler.constructor.name} failed on ${context.aggregateId}@${context.version}: ${err instanceof Error ? err.message : String(err)}`,
        );
        throw err;
      }
    }
    this.sagaInput.next(event);
  }

  onModuleDestroy(): void {
    for (const subscription of this.sagaSubscriptions) subscription.unsubscribe();
    this.sagaInput.complete();
  }

  // Found on the first delivery, when every module's providers exist.
  private discover(): Map<EventClass, IEventHandler[]> {
    if (this.handlers) return this.handlers;
    const handlers = new Map<EventClass, IEventHandler[]>(this.events.map((e) => [e, []]));
    for (const wrapper of this.discovery.getProviders()) {
      const { instance, metatype } = wrapper;
      if (!instance || typeof instance !== 'object' || !metatype) continue;
      const handled = Reflect.getMetadata(EVENTS_HANDLER_METADATA, metatype) as EventClass[] | undefined;
      for (const eventClass of handled ?? []) handlers.get(eventClass)?.push(instance as IEventHandler);
      const sagas = (Reflect.getMetadata(SAGA_METADATA, metatype) as Array<string | symbol> | undefined) ?? [];
      for (const key of sagas) this.startSaga(instance as Record<string | symbol, Saga>, key, metatype as Type<unknown>);
    }
    this.handlers = handlers;
    return handlers;
  }

  private startSaga(instance: Record<string | symbol, Saga>, key: string | symbol, type: Type<unknown>): void {
    const saga = instance[key];
    if (typeof saga !== 'function') return;
    const commands$ = saga.call(instance, this.sagaInput.asObservable());
    this.sagaSubscriptions.push(
      commands$.subscribe((command) => {
        if (!command) return;
        if (!this.commandBus) {
          this.logger.error(`saga ${type.name}.${String(key)} gave a command, but there is no CommandBus: import CqrsModule.forRoot()`);
          return;
        }
        this.commandBus.execute(command).catch((err: unknown) => {
          this.logger.error(`command of saga ${type.name}.${String(key)} failed: ${err instanceof Error ? err.message : String(err)}`);
        });
      }),
    );
  }
}
