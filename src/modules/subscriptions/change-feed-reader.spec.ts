import { estimatePending, eventsOfPage, lsnOfSessionToken, positionParts } from './change-feed-reader.js';
import { clipContinuation, cutRange, uncovered } from './lease-layout.js';

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

describe('positionParts', () => {
  const beginning = { kind: 'beginning' } as const;
  const partitions = [
    { minInclusive: '', maxExclusive: '10' },
    { minInclusive: '10', maxExclusive: '18' },
    { minInclusive: '18', maxExclusive: '20' },
    { minInclusive: '20', maxExclusive: 'FF' },
  ];
  const lease = { minInclusive: '10', maxExclusive: '20' };
  const token = (...elements: Array<[string, string, string]>) =>
    JSON.stringify({ rid: 'abc=', Continuation: elements.map(([minInclusive, maxExclusive, continuationToken]) => ({ minInclusive, maxExclusive, continuationToken })) });

  it('cuts a range without a checkpoint along the partitions it spans, each from the start position', () => {
    expect(positionParts(lease, { continuation: null, startFrom: beginning }, partitions)).toEqual([
      { range: { minInclusive: '10', maxExclusive: '18' }, position: { continuation: null, startFrom: beginning } },
      { range: { minInclusive: '18', maxExclusive: '20' }, position: { continuation: null, startFrom: beginning } },
    ]);
  });

  it('gives each child of a range in the checkpoint its parent continuation, and keeps the others as they are', () => {
    const parts = positionParts(lease, { continuation: token(['10', '20', '"7"']), startFrom: beginning }, partitions);
    expect(parts.map((p) => [p.range, p.position.continuation])).toEqual([
      [{ minInclusive: '10', maxExclusive: '18' }, token(['10', '18', '"7"'])],
      [{ minInclusive: '18', maxExclusive: '20' }, token(['18', '20', '"7"'])],
    ]);
    const after = positionParts(lease, { continuation: token(['18', '20', '"9"'], ['10', '18', '"8"']), startFrom: beginning }, partitions);
    expect(after.map((p) => p.position.continuation)).toEqual([token(['18', '20', '"9"']), token(['10', '18', '"8"'])]);
  });

  it('keeps a continuation it cannot read whole', () => {
    const position = { continuation: 'opaque', startFrom: beginning };
    expect(positionParts(lease, position, partitions)).toEqual([{ range: lease, position }]);
  });
});

describe('uncovered', () => {
  const lease = (minInclusive: string, maxExclusive: string) => ({ feedRange: { minInclusive, maxExclusive } });

  it('counts a range covered by the union of leases (after a merge) as covered', () => {
    expect(uncovered([{ minInclusive: '', maxExclusive: 'FF' }], [lease('', '20'), lease('20', 'FF')])).toEqual([]);
  });

  it('returns only the gaps, so a new lease never overlaps another', () => {
    expect(uncovered([{ minInclusive: '', maxExclusive: 'FF' }], [lease('10', '20'), lease('30', '40')])).toEqual([
      { minInclusive: '', maxExclusive: '10' },
      { minInclusive: '20', maxExclusive: '30' },
      { minInclusive: '40', maxExclusive: 'FF' },
    ]);
    expect(uncovered([{ minInclusive: '10', maxExclusive: '20' }], [lease('', '18')])).toEqual([{ minInclusive: '18', maxExclusive: '20' }]);
    expect(uncovered([{ minInclusive: '10', maxExclusive: '20' }], [])).toEqual([{ minInclusive: '10', maxExclusive: '20' }]);
  });
});

describe('cutRange and clipContinuation', () => {
  it('cuts the whole hash space into contiguous parts, and leaves bounds it cannot read whole', () => {
    const parts = cutRange({ minInclusive: '', maxExclusive: 'FF' }, 4);
    expect(parts).toEqual([
      { minInclusive: '', maxExclusive: '10000000000000000000000000000000' },
      { minInclusive: '10000000000000000000000000000000', maxExclusive: '20000000000000000000000000000000' },
      { minInclusive: '20000000000000000000000000000000', maxExclusive: '30000000000000000000000000000000' },
      { minInclusive: '30000000000000000000000000000000', maxExclusive: 'FF' },
    ]);
    expect(cutRange({ minInclusive: '05C1C9CD673398', maxExclusive: 'FF' }, 4)).toEqual([{ minInclusive: '05C1C9CD673398', maxExclusive: 'FF' }]);
  });

  it('narrows a continuation to a sub-range, keeping each position', () => {
    const token = JSON.stringify({ rid: 'r', Continuation: [{ minInclusive: '', maxExclusive: 'FF', continuationToken: '"42"' }] });
    const sub = { minInclusive: '10000000000000000000000000000000', maxExclusive: '20000000000000000000000000000000' };
    expect(JSON.parse(clipContinuation(token, sub)!)).toEqual({ rid: 'r', Continuation: [{ ...sub, continuationToken: '"42"' }] });
    expect(clipContinuation(null, sub)).toBeNull();
    expect(clipContinuation('opaque', sub)).toBeUndefined();
  });
});
