import { estimatePending, eventsOfPage, lsnOfSessionToken } from './change-feed-reader.js';

const doc = (a: string, v: number, lsn: number, d?: string) => ({ id: String(v), a, v, _lsn: lsn, _ts: 1_700_000_000, ...(d ? { d } : {}) });

describe('eventsOfPage', () => {
  it('orders by commit, and by version inside one commit whatever order the feed gave', () => {
    const { events } = eventsOfPage([doc('x', 3, 7), doc('y', 1, 5), doc('x', 2, 7), doc('x', 1, 4), doc('x', 4, 7)]);
    expect(events.map((e) => `${e.aggregateId}@${e.version}`)).toEqual(['x@1', 'y@1', 'x@2', 'x@3', 'x@4']);
  });

  it('decodes the data and the commit time, and counts documents that are not events', () => {
    const { events, foreign } = eventsOfPage([doc('x', 1, 1, Buffer.from('hi').toString('base64')), { id: 'other' }, { a: 'x', v: 1.5 }]);
    expect(foreign).toBe(2);
    expect(Buffer.from(events[0].data).toString()).toBe('hi');
    expect(events[0].committedAt).toEqual(new Date(1_700_000_000_000));
    expect(eventsOfPage([doc('x', 2, 1)]).events[0].data).toEqual(new Uint8Array(0));
  });
});

describe('lag estimates', () => {
  it('reads the global LSN of session tokens, the highest of several ranges', () => {
    expect(lsnOfSessionToken('0:-1#12')).toBe(12);
    expect(lsnOfSessionToken('0:1#12#3=10,1:-1#40')).toBe(40);
    expect(lsnOfSessionToken('garbage')).toBeUndefined();
    expect(lsnOfSessionToken(undefined)).toBeUndefined();
  });

  it('counts the changes from the first pending LSN to the latest, at least one when something is pending', () => {
    expect(estimatePending({ caughtUp: true, latestLsn: 9 })).toBe(0);
    expect(estimatePending({ caughtUp: false, latestLsn: 9, firstPendingLsn: 7 })).toBe(3);
    expect(estimatePending({ caughtUp: false })).toBe(1);
  });
});
