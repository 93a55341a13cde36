/** Base class of every error the subscriptions raise on purpose. */
export class SubscriptionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A subscriber class or its registration is wrong; the message says what to change. */
export class SubscriberDefinitionError extends SubscriptionError {}

/** No subscriber of that name is registered in this application. */
export class UnknownSubscriberError extends SubscriptionError {
  constructor(readonly subscriber: string) {
    super(`no subscriber named ${JSON.stringify(subscriber)} is registered: list it in SubscriptionsModule.forFeature([...])`);
  }
}

/** The subscriber has no dead letter of that id (never recorded, or already replayed or discarded). */
export class UnknownDeadLetterError extends SubscriptionError {
  constructor(
    readonly subscriber: string,
    readonly id: string,
  ) {
    super(`subscriber ${JSON.stringify(subscriber)} has no dead letter ${JSON.stringify(id)}: list them with deadLetters()`);
  }
}

/**
 * A rebuild of this consumer group is already running (on this or another instance): one at a time per
 * group. `holder` is the instance running it, `startedAt` when it began. An HTTP route answers 409 with it.
 */
export class RebuildInProgressError extends SubscriptionError {
  constructor(
    readonly subscriber: string,
    readonly holder: string,
    readonly startedAt: Date,
  ) {
    super(`a rebuild of ${JSON.stringify(subscriber)} is already running (on ${holder}, since ${startedAt.toISOString()}): wait for it to end`);
  }
}

/** Replaying a dead letter failed again: the record is kept, `cause` is the handler's (or serializer's) error. */
export class DeadLetterReplayError extends SubscriptionError {
  constructor(
    readonly subscriber: string,
    readonly id: string,
    readonly handler: string,
    cause: unknown,
  ) {
    super(`replaying dead letter ${id} of ${subscriber}: ${handler} failed again: ${messageOf(cause)}; the dead letter is kept`, { cause });
  }
}

/** Another instance took the lease (or it was reset): this instance must stop reading that feed range. */
export class LeaseLostError extends SubscriptionError {
  constructor(readonly leaseId: string) {
    super(`lease ${leaseId} is no longer held by this instance`);
  }
}

/** `waitForCatchUp` or `rebuild` did not finish within its timeout. */
export class SubscriptionTimeoutError extends SubscriptionError {}

/** True when `err` says a lease was lost. */
export function isLeaseLost(err: unknown): err is LeaseLostError {
  return err instanceof LeaseLostError;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}
