/*
 * How EventStoreExceptionFilter answers a store error whose cause is a fault the retries did not outlast:
 * 503 "retry later" for every shape of a lost connection @azure/cosmos throws, the message-only one of its
 * change feed iterator included; 500 for an answer that says no.
 */
import type { ArgumentsHost } from '@nestjs/common';
import type { HttpAdapterHost } from '@nestjs/core';
import { EventStoreError, EventStoreExceptionFilter } from '../../src/index.js';

function answer(cause: unknown): { status: number; body: unknown } {
  let reply!: { status: number; body: unknown };
  const adapterHost = { httpAdapter: { reply: (_res: unknown, body: unknown, status: number) => (reply = { status, body }) } };
  const host = { getType: () => 'http', switchToHttp: () => ({ getResponse: () => ({}) }) } as unknown as ArgumentsHost;
  const filter = new EventStoreExceptionFilter(adapterHost as unknown as HttpAdapterHost);
  (filter as unknown as { logger: { error(): void } }).logger = { error: () => undefined };
  filter.catch(new EventStoreError('load failed', { cause }), host);
  return reply;
}

it.each<[string, number, unknown]>([
  ['a cut answer (PARSE_ERROR)', 503, Object.assign(new Error('Error reading response as text: aborted'), { code: 'PARSE_ERROR' })],
  ['a cut answer rethrown with its message only', 503, new Error('Error reading response as text: aborted')],
  ['a reset rethrown with its message only', 503, new Error('read ECONNRESET')],
  ['a socket error under fetch failed', 503, new TypeError('fetch failed', { cause: { code: 'UND_ERR_SOCKET' } })],
  ['a 503', 503, { code: 503 }],
  ['a 400', 500, Object.assign(new Error('bad request'), { code: 400 })],
  ['an error without a code', 500, new Error('something else')],
  ['a refused connection', 503, Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })],
  ['a whole answer that does not parse (PARSE_ERROR)', 500, Object.assign(new Error('Unexpected token < in JSON'), { code: 'PARSE_ERROR' })],
  ["a programming error (Node's ERR_*)", 500, Object.assign(new TypeError('bad argument'), { code: 'ERR_INVALID_ARG_TYPE' })],
])('%s: %d', (_label, status, cause) => {
  const { status: got, body } = answer(cause);
  expect(got).toBe(status);
  if (status === 503) expect(body).toEqual({ statusCode: 503, error: 'Service Unavailable', message: 'Cosmos DB is unavailable; retry later' });
});
