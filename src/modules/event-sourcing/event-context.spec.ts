import { describe, expect, it } from '@jest/globals';
import { ValidationError } from '../event-store/index.js';
import {
  correlationIdOf,
  currentEventContext,
  isValidCorrelationId,
  MAX_CORRELATION_ID_LENGTH,
  runInHandlerContext,
  runWithEventContext,
} from './event-context.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

describe('correlationIdOf (an HTTP request\'s headers)', () => {
  it('takes a valid x-correlation-id first', () => {
    expect(correlationIdOf({ 'x-correlation-id': 'req-1', traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` })).toBe('req-1');
    expect(correlationIdOf({ 'x-correlation-id': 'a'.repeat(MAX_CORRELATION_ID_LENGTH) })).toBe('a'.repeat(MAX_CORRELATION_ID_LENGTH));
  });

  it('else the trace id of a valid W3C traceparent', () => {
    expect(correlationIdOf({ traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` })).toBe(TRACE_ID);
    // A later version may append fields.
    expect(correlationIdOf({ traceparent: `01-${TRACE_ID}-00f067aa0ba902b7-01-more` })).toBe(TRACE_ID);
  });

  it.each([
    ['a too long id', { 'x-correlation-id': 'a'.repeat(MAX_CORRELATION_ID_LENGTH + 1) }],
    ['an empty id', { 'x-correlation-id': '' }],
    ['a space', { 'x-correlation-id': 'a b' }],
    ['a control character', { 'x-correlation-id': 'a\nforged log line' }],
    ['non-ASCII', { 'x-correlation-id': 'café' }],
    ['a repeated header (an array)', { 'x-correlation-id': ['a', 'b'] }],
    ['traceparent version ff', { traceparent: `ff-${TRACE_ID}-00f067aa0ba902b7-01` }],
    ['an all-zero trace id', { traceparent: `00-${'0'.repeat(32)}-00f067aa0ba902b7-01` }],
    ['an all-zero parent id', { traceparent: `00-${TRACE_ID}-${'0'.repeat(16)}-01` }],
    ['upper-case hex', { traceparent: `00-${TRACE_ID.toUpperCase()}-00f067aa0ba902b7-01` }],
    ['version 00 with a trailing field', { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01-x` }],
    ['no headers at all', undefined],
  ])('passes %s over for a fresh UUID', (_what, headers) => {
    const id = correlationIdOf(headers);
    expect(id).toMatch(UUID);
    expect(correlationIdOf(headers)).not.toBe(id);
  });
});

describe('runWithEventContext', () => {
  it('is seen across awaits and nests, the innermost winning', async () => {
    expect(currentEventContext()).toBeUndefined();
    await runWithEventContext({ correlationId: 'outer', headers: { tenant: 't' } }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      expect(currentEventContext()).toEqual({ correlationId: 'outer', headers: { tenant: 't' } });
      await runWithEventContext({ correlationId: 'inner', causationId: 'e-1' }, async () => {
        await Promise.resolve();
        expect(currentEventContext()).toEqual({ correlationId: 'inner', causationId: 'e-1' });
      });
      expect(currentEventContext()?.correlationId).toBe('outer');
    });
    expect(currentEventContext()).toBeUndefined();
  });

  it.each([
    [{ correlationId: '' }, 'correlationId'],
    [{ correlationId: 'a\u0000b' }, 'correlationId'],
    [{ correlationId: 'ok', causationId: 'x'.repeat(129) }, 'causationId'],
    [{ correlationId: 'ok', headers: { n: 1 as unknown as string } }, 'headers.n'],
    [{ correlationId: 'ok', headers: [] as unknown as Record<string, string> }, 'headers'],
    [{ correlationId: 'ok', headers: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`h${i}`, 'v'])) }, 'at most 32 headers'],
    [{ correlationId: 'ok', headers: { ['n'.repeat(101)]: 'v' } }, 'names must be 1 to 100'],
    [{ correlationId: 'ok', headers: { '': 'v' } }, 'names must be 1 to 100'],
    [{ correlationId: 'ok', headers: { big: 'v'.repeat(1001) } }, 'headers.big'],
  ])('refuses %j, naming %s', (context, field) => {
    expect(() => runWithEventContext(context, () => undefined)).toThrow(ValidationError);
    expect(() => runWithEventContext(context, () => undefined)).toThrow(field);
  });

  it('freezes what it holds: a caller changing its object later changes nothing', () => {
    const headers: Record<string, string> = { tenant: 'a' };
    runWithEventContext({ correlationId: 'c', headers }, () => {
      headers.tenant = 'b';
      expect(currentEventContext()?.headers).toEqual({ tenant: 'a' });
    });
  });
});

describe('runInHandlerContext', () => {
  it('continues the handled event\'s correlation, caused by its eventId (a SubscribedEvent or a bare envelope)', () => {
    const envelope = { eventId: 'e-7', correlationId: 'story-1' };
    runInHandlerContext({ aggregateId: 'Order/o-1', version: 3, event: envelope }, () => {
      expect(currentEventContext()).toEqual({ correlationId: 'story-1', causationId: 'e-7' });
    });
    runInHandlerContext(envelope, () => expect(currentEventContext()).toEqual({ correlationId: 'story-1', causationId: 'e-7' }));
  });

  it('stands stream@version in for an event stored before metadata, and a fresh id when nothing is known', () => {
    runInHandlerContext({ aggregateId: 'Order/o-1', version: 3, event: { type: 'T' } }, () => {
      expect(currentEventContext()).toEqual({ correlationId: 'Order/o-1@3', causationId: 'Order/o-1@3' });
    });
    runInHandlerContext({}, () => {
      expect(currentEventContext()?.causationId).toMatch(UUID);
      expect(isValidCorrelationId(currentEventContext()?.correlationId)).toBe(true);
    });
  });
});
