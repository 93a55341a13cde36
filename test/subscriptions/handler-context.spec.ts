/*
 * A command issued inside a subscriber's handler continues the handled event's story: its events carry the
 * handled event's correlation id, and the handled event's id as their causation id, with nothing passed by
 * the handler (the runtime runs each handler in the event's context). The handler also sees the ids.
 */
import { Injectable, Module } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  Aggregate,
  AggregateRoot,
  Command,
  EventSourcingModule,
  EventStoreModule,
  getAggregateRepositoryToken,
  InjectAggregateRepository,
  JsonEventSerializer,
  On,
  OnStoredEvent,
  AggregateRepository,
  runWithEventContext,
  Subscriber,
  SUBSCRIPTIONS,
  SubscriptionsModule,
  type SubscribedEvent,
  type Subscriptions,
} from '../../src/index.js';

class Opened {
  constructor(readonly owner: string) {}
}
class Welcomed {
  constructor(readonly owner: string) {}
}

@Aggregate({ type: 'Account' })
class Account extends AggregateRoot {
  @On(Opened) onOpened(): void {}
}

@Aggregate({ type: 'Mailbox' })
class Mailbox extends AggregateRoot {
  @On(Welcomed) onWelcomed(): void {}
}

class Open extends Command<Account> {
  readonly lifecycle = 'create';
  constructor(readonly aggregateId: string) {
    super();
  }
  emit() {
    return new Opened('ann');
  }
}

class Welcome extends Command<Mailbox> {
  readonly lifecycle = 'create';
  constructor(readonly aggregateId: string) {
    super();
  }
  emit() {
    return new Welcomed('ann');
  }
}

@Injectable()
class Seen {
  readonly events: SubscribedEvent[] = [];
}

@Subscriber({ name: 'welcome', serializer: new JsonEventSerializer() })
class WelcomeOnOpen {
  constructor(
    @InjectAggregateRepository(Mailbox) private readonly mailboxes: AggregateRepository<Mailbox>,
    private readonly seen: Seen,
  ) {}

  @OnStoredEvent({ events: [Opened] })
  async onOpened(_event: Opened, meta: SubscribedEvent): Promise<void> {
    this.seen.events.push(meta);
    await this.mailboxes.apply(new Welcome(meta.aggregateId)); // no ids passed
  }
}

const Repositories = EventSourcingModule.forFeature([Account, Mailbox]);

@Module({
  imports: [Repositories, SubscriptionsModule.forFeature([WelcomeOnOpen], { imports: [Repositories], providers: [Seen] })],
  exports: [Repositories],
})
class MailModule {}

let moduleRef: TestingModule;
beforeEach(async () => {
  moduleRef = await Test.createTestingModule({ imports: [EventStoreModule.inMemory(), SubscriptionsModule.inMemory(), MailModule] }).compile();
  await moduleRef.init();
});
afterEach(() => moduleRef?.close());

it("a handler's command inherits the handled event's correlation id, and takes its id as causation id", async () => {
  const accounts = moduleRef.get<AggregateRepository<Account>>(getAggregateRepositoryToken(Account));
  const mailboxes = moduleRef.get<AggregateRepository<Mailbox>>(getAggregateRepositoryToken(Mailbox));
  await runWithEventContext({ correlationId: 'req-42' }, () => accounts.apply(new Open('a-1')));
  await moduleRef.get<Subscriptions>(SUBSCRIPTIONS).waitForCatchUp('welcome', { timeoutMs: 2_000 });

  const [opened] = await accounts.history('a-1');
  expect(opened).toMatchObject({ correlationId: 'req-42' });
  expect(opened.eventId).toEqual(expect.any(String));
  // The handler saw the event's ids.
  expect(moduleRef.get(Seen, { strict: false }).events[0]).toMatchObject({ aggregateType: 'Account', aggregateId: 'a-1', eventId: opened.eventId, correlationId: 'req-42' });
  // The command it issued continued the story.
  const [welcomed] = await mailboxes.history('a-1');
  expect(welcomed).toMatchObject({ type: 'Welcomed', correlationId: 'req-42', causationId: opened.eventId });
});
