/*
 * The JSON Schema of the filter's answers says what the filter really answers: every body it gives for
 * every kind of error has the described status, the required properties and no property left undescribed.
 */
import { Logger, type ArgumentsHost } from '@nestjs/common';
import type { HttpAdapterHost } from '@nestjs/core';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { ConcurrencyError, EventStoreError, NotFoundError, ValidationError, WriteOutcomeUnknownError } from '../event-store/index.js';
import { errorBodySchema, eventStoreErrorAnswers, type ErrorBodyJsonSchema } from './error-body.schema.js';
import {
  AggregateAlreadyExistsError,
  AggregateNotFoundError,
  CommandContentionError,
  CommandRejectedError,
  CommandValidationError,
  InvalidStateError,
  UnreadableStreamError,
} from './event-sourcing.errors.js';
import { EventStoreExceptionFilter } from './event-store-exception.filter.js';

/** What the filter replies for `err`: the body and the status it gives the HTTP adapter. */
function answer(err: EventStoreError): { status: number; body: Record<string, unknown> } {
  let replied: { status: number; body: Record<string, unknown> } | undefined;
  const adapterHost = {
    httpAdapter: {
      reply: (_res: unknown, body: Record<string, unknown>, status: number) => {
        replied = { status, body };
      },
    },
  } as unknown as HttpAdapterHost;
  const host = {
    getType: () => 'http',
    switchToHttp: () => ({ getResponse: () => ({}), getRequest: () => ({}) }),
  } as unknown as ArgumentsHost;
  new EventStoreExceptionFilter(adapterHost).catch(err, host);
  if (!replied) throw new Error(`no reply for ${err.name}`);
  return replied;
}

/** The JSON types of `value`, as JSON Schema names them. */
function jsonType(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** What in `body` the schema does not allow (enough of JSON Schema for these flat bodies). */
function violations(schema: ErrorBodyJsonSchema, body: Record<string, unknown>): string[] {
  const problems = (schema.required ?? []).filter((name) => !(name in body)).map((name) => `${name} missing`);
  for (const [name, value] of Object.entries(body)) {
    const property = schema.properties?.[name];
    if (!property) {
      problems.push(`${name} not described`);
      continue;
    }
    if (jsonType(value) !== property.type) problems.push(`${name} is ${jsonType(value)}, described ${property.type}`);
    if (property.enum && !property.enum.includes(value as string | number | boolean)) problems.push(`${name} ${String(value)} not in enum`);
    if (property.items && Array.isArray(value)) {
      for (const item of value) if (jsonType(item) !== property.items.type) problems.push(`${name}[] is ${jsonType(item)}`);
    }
  }
  return problems;
}

const unavailable = Object.assign(new Error('throttled'), { code: 429 });

const ERRORS: EventStoreError[] = [
  new ValidationError('quantity', 'must be positive'),
  new ConcurrencyError('Order/o-1', [3]),
  new CommandContentionError('Order', 'o-1', 'Order/o-1', [3], 5, 5000),
  new AggregateAlreadyExistsError('Order', 'o-1'),
  new InvalidStateError('ShipOrder', 'open', ['submitted']),
  new NotFoundError('no such document'),
  new AggregateNotFoundError('Order', 'o-1'),
  new CommandValidationError('AddLine', ['quantity must be positive']),
  new CommandRejectedError('AddLine', 'the order is closed'),
  new UnreadableStreamError('Order', 'o-1', 'Order/o-1', 2, 'unknown event type'),
  new WriteOutcomeUnknownError('Order/o-1', [4, 5]),
  new EventStoreError('Cosmos DB failed', { cause: unavailable }),
  new EventStoreError('Cosmos DB failed', { cause: Object.assign(new Error('bad request'), { code: 400 }) }),
];

describe('errorBodySchema and eventStoreErrorAnswers', () => {
  beforeAll(() => {
    // The filter logs what it answers 5xx; not this test's subject.
    jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });
  afterAll(() => {
    jest.restoreAllMocks();
  });

  it.each(ERRORS.map((err) => [err.name, err] as const))('describe what the filter answers for a %s', (_name, err) => {
    const { status, body } = answer(err);
    expect(body.statusCode).toBe(status);
    const described = eventStoreErrorAnswers[status as keyof typeof eventStoreErrorAnswers];
    expect(described?.status).toBe(status);
    expect(violations(described.schema, body)).toEqual([]);
    expect(violations(errorBodySchema, body)).toEqual([]);
  });

  it('describe every status the filter answers, and only those', () => {
    const statuses = new Set(ERRORS.map((err) => answer(err).status));
    expect([...statuses].sort()).toEqual(Object.keys(eventStoreErrorAnswers).map(Number).sort());
  });

  it('are plain JSON Schema: no OpenAPI library object, serialisable as they are', () => {
    expect(JSON.parse(JSON.stringify(eventStoreErrorAnswers))).toEqual(eventStoreErrorAnswers);
    expect(JSON.parse(JSON.stringify(errorBodySchema))).toEqual(errorBodySchema);
  });
});
