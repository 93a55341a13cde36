import fc from 'fast-check';
import { chunkByLimits, prepareEvents, toEventDocument } from './event-documents.js';
import { MAX_BATCH_OPERATIONS, MAX_REQUEST_BYTES } from './cosmos-limits.js';

const ops = (sizes: number[]) => sizes.map((operationBytes, i) => ({ i, operationBytes }));
/** What the batch body weighs: a JSON array of the operations. */
const bodyBytes = (chunk: Array<{ operationBytes: number }>) =>
  2 + chunk.reduce((sum, op) => sum + op.operationBytes, 0) + chunk.length - 1;

describe('chunkByLimits', () => {
  it('cuts at 100 operations', () => {
    const chunks = chunkByLimits(ops(Array(250).fill(50)));
    expect(chunks.map((c) => c.length)).toEqual([100, 100, 50]);
  });

  it('cuts before the request body would pass 2 MiB, keeping order', () => {
    const chunks = chunkByLimits(ops(Array(7).fill(600 * 1024)));
    expect(chunks.map((c) => c.length)).toEqual([3, 3, 1]);
    expect(chunks.flat().map((op) => op.i)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    for (const chunk of chunks) expect(bodyBytes(chunk)).toBeLessThanOrEqual(MAX_REQUEST_BYTES);
  });

  it('fills a chunk exactly to the limit and no further', () => {
    const half = (MAX_REQUEST_BYTES - 3) / 2; // "[" + a + "," + b + "]"
    expect(chunkByLimits(ops([Math.floor(half), Math.floor(half)])).length).toBe(1);
    expect(chunkByLimits(ops([Math.floor(half), Math.floor(half) + 2])).length).toBe(2);
  });

  it('never leaves an empty chunk', () => {
    expect(chunkByLimits([])).toEqual([]);
    expect(chunkByLimits(ops([MAX_REQUEST_BYTES - 2])).map((c) => c.length)).toEqual([1]);
    expect(chunkByLimits(ops(Array(MAX_BATCH_OPERATIONS).fill(1))).length).toBe(1);
  });
});

describe('prepareEvents', () => {
  it('weighs each operation as @azure/cosmos serializes it', () => {
    const [prepared] = prepareEvents('agg-é', [{ version: 12, data: new Uint8Array([1, 2, 3, 4]), ttl: 2_000_000_000 }], 1_000, 0);
    const sent = JSON.stringify({ operationType: 'Create', resourceBody: prepared.doc });
    expect(prepared.operationBytes).toBe(Buffer.byteLength(sent));
  });
});

describe('prepareEvents, any record', () => {
  it('weighs exactly what JSON.stringify writes, whatever the aggregate id, version, data and expiry', () => {
    const record = fc.record({
      version: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.integer({ min: 1 })),
      data: fc.uint8Array({ maxLength: 40 }),
      ttl: fc.option(fc.integer({ min: 0, max: 3_800_000_000 }), { nil: undefined }),
      // Quotes, backslashes and control characters are escaped in JSON: the type is weighed as written.
      type: fc.option(fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }), record, fc.nat(10 ** 6), (id, r, storeTtl) => {
        const { ttl, type, ...rest } = r;
        const [prepared] = prepareEvents(id, [{ ...rest, ...(ttl !== undefined && { ttl }), ...(type !== undefined && { type }) }], 1_700_000_000, storeTtl);
        const sent = JSON.stringify({ operationType: 'Create', resourceBody: prepared.doc });
        expect(prepared.operationBytes).toBe(Buffer.byteLength(sent));
      }),
      { numRuns: 500 },
    );
  });
});

describe('toEventDocument', () => {
  it('takes the record ttl over the store ttl, and the store ttl over none', () => {
    const data = new Uint8Array([255]);
    expect(toEventDocument('a', { version: 1, data, ttl: 1_500 }, 1_000, 60)).toEqual({ id: '1', a: 'a', v: 1, d: '/w==', t: 1_500, ttl: 500 });
    expect(toEventDocument('a', { version: 1, data, ttl: 0 }, 1_000, 60)).toMatchObject({ t: 1_060, ttl: 60 });
    expect(toEventDocument('a', { version: 1, data }, 1_000, 0)).toEqual({ id: '1', a: 'a', v: 1, d: '/w==' });
  });

  it('stores the type as y, and reads it back', () => {
    const doc = toEventDocument('a', { version: 2, data: new Uint8Array(), type: 'OrderPlaced' }, 1_000, 0);
    expect(doc).toEqual({ id: '2', a: 'a', v: 2, y: 'OrderPlaced' });
  });

  it('keeps at least one second of ttl for a record already expired', () => {
    expect(toEventDocument('a', { version: 1, data: new Uint8Array(), ttl: 900 }, 1_000, 0)).toEqual({ id: '1', a: 'a', v: 1, t: 900, ttl: 1 });
  });
});
