/*
 * EventStoreExceptionFilter in each execution context Nest runs filters in: HTTP answers the body; RPC, GraphQL
 * and WebSocket map it their own way; none of them reaches for switchToHttp() outside HTTP.
 */
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import type { HttpAdapterHost } from '@nestjs/core';
import { isObservable, lastValueFrom } from 'rxjs';
import { ConcurrencyError, EventStoreError } from '../event-store/index.js';
import { EventStoreExceptionFilter, EventStoreGraphQLError } from './event-store-exception.filter.js';

type ContextType = 'http' | 'rpc' | 'ws' | 'graphql';

function hostOf(type: ContextType, args: unknown[]): ExecutionContextHost {
  const host = new ExecutionContextHost(args);
  host.setType(type);
  return host;
}

function quietFilter(adapterHost?: HttpAdapterHost): EventStoreExceptionFilter {
  const filter = new EventStoreExceptionFilter(adapterHost);
  (filter as unknown as { logger: { error(): void } }).logger = { error: () => undefined };
  return filter;
}

const conflict = () => new ConcurrencyError('s/1', [3]);

it('answers over HTTP through the adapter', () => {
  const replies: Array<{ res: unknown; body: unknown; status: number }> = [];
  const adapterHost = { httpAdapter: { reply: (res: unknown, body: unknown, status: number) => replies.push({ res, body, status }) } };
  const res = { the: 'response' };
  const result = quietFilter(adapterHost as unknown as HttpAdapterHost).catch(conflict(), hostOf('http', [{}, res, () => {}]));
  expect(result).toBeUndefined();
  expect(replies).toEqual([{ res, status: 409, body: expect.objectContaining({ statusCode: 409, error: 'Conflict', versions: [3] }) }]);
});

it('in an RPC handler answers an error observable with the body, and needs no HTTP adapter', async () => {
  const result = quietFilter(undefined).catch(conflict(), hostOf('rpc', [{ data: 1 }, {}]));
  expect(isObservable(result)).toBe(true);
  await expect(lastValueFrom(result as never)).rejects.toEqual(
    expect.objectContaining({ status: 'error', statusCode: 409, error: 'Conflict', versions: [3] }),
  );
});

it('in a GraphQL resolver returns an error whose extensions hold the body', () => {
  const err = conflict();
  const result = quietFilter(undefined).catch(err, hostOf('graphql', [{}, {}, {}, {}]));
  expect(result).toBeInstanceOf(EventStoreGraphQLError);
  const gql = result as EventStoreGraphQLError;
  expect(gql.message).toBe(err.message);
  expect(gql.cause).toBe(err);
  expect(gql.extensions).toEqual(expect.objectContaining({ code: 'CONFLICT', statusCode: 409, versions: [3] }));
});

it('on a WebSocket gateway emits the body as an exception event to the client', () => {
  const emitted: Array<[string, unknown]> = [];
  const client = { emit: (event: string, data: unknown) => emitted.push([event, data]) };
  const result = quietFilter(undefined).catch(conflict(), hostOf('ws', [client, { msg: 1 }]));
  expect(result).toBeUndefined();
  expect(emitted).toEqual([['exception', expect.objectContaining({ status: 'error', statusCode: 409, error: 'Conflict' })]]);
});

it('on a WebSocket client that cannot emit, and over HTTP without an adapter, rethrows the error', () => {
  const err = new EventStoreError('boom');
  expect(() => quietFilter(undefined).catch(err, hostOf('ws', [{}, {}]))).toThrow(err);
  expect(() => quietFilter(undefined).catch(err, hostOf('http', [{}, {}]))).toThrow(err);
});
