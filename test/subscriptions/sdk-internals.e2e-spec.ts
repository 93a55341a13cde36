/*
 * The subscriptions rely on parts of @azure/cosmos that are not public API (see sdk-adapter.ts). This test
 * fails, naming the part, when a newer SDK changes one of them.
 */
import { checkSdkInternals, pageFault, SdkInternalsError } from '../../src/modules/subscriptions/sdk-adapter.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';

let fixture: CosmosFixture;

beforeAll(async () => {
  fixture = await startCosmosFixture({ partitionKeyRanges: 2 });
});

afterAll(async () => {
  await fixture?.close();
});

it('finds the feed range class and the composite continuation as the subscriptions use them', async () => {
  await expect(checkSdkInternals(fixture.events)).resolves.toBeUndefined();
});

it('names the part that changed', () => {
  const err = new SdkInternalsError('change feed continuation', 'not the composite shape');
  expect(err.message).toMatch(/@azure\/cosmos internals changed \(change feed continuation\)/);
});

describe('pageFault', () => {
  const token = (...positions: Array<[string, string, string | undefined]>) =>
    JSON.stringify({ rid: 'r', Continuation: positions.map(([minInclusive, maxExclusive, continuationToken]) => ({ minInclusive, maxExclusive, continuationToken })) });

  it('refuses any answer but 200 and 304', () => {
    expect(pageFault({ statusCode: 410, continuationToken: token(['', 'FF', undefined]) }, null)).toMatch(/410/);
    expect(pageFault({ statusCode: 410, subStatusCode: 1008, continuationToken: '' }, null)).toMatch(/410\/1008/);
    expect(pageFault({ statusCode: 304, continuationToken: token(['', 'FF', '"5"']) }, token(['', 'FF', '"5"']))).toBeUndefined();
  });

  it('refuses a continuation that lost a range position the previous one had', () => {
    const before = token(['', '80', '"5"'], ['80', 'FF', '"9"']);
    expect(pageFault({ statusCode: 200, continuationToken: token(['', '80', '"6"'], ['80', 'FF', undefined]) }, before)).toMatch(/lost the position of range 80-FF/);
    expect(pageFault({ statusCode: 200, continuationToken: token(['', '80', '"6"'], ['80', 'FF', '"9"']) }, before)).toBeUndefined();
    // A range the SDK did not read yet may still have none: after a 200 from the first range, it is the front one.
    expect(pageFault({ statusCode: 200, continuationToken: token(['80', 'FF', undefined], ['', '80', '"6"']) }, token(['', '80', '"5"'], ['80', 'FF', undefined]))).toBeUndefined();
  });

  it('refuses a first page (no previous position) where a range the SDK read has no position', () => {
    // One range: the page came from it, so it must have a position.
    expect(pageFault({ statusCode: 200, continuationToken: token(['', 'FF', undefined]) }, null)).toMatch(/lost the position of range -FF/);
    expect(pageFault({ statusCode: 304, continuationToken: token(['', 'FF', undefined]) }, null)).toMatch(/lost the position/);
    expect(pageFault({ statusCode: 200, continuationToken: token(['', 'FF', '"3"']) }, null)).toBeUndefined();
    expect(pageFault({ statusCode: 200, continuationToken: '' }, null)).toMatch(/without a continuation/);
    // Two ranges, fresh: the first answered (its non-split 410 left no position), then the second answered 200.
    expect(pageFault({ statusCode: 200, continuationToken: token(['', '80', undefined], ['80', 'FF', '"4"']) }, null)).toMatch(/lost the position of range -80/);
    // Two ranges, fresh: the first answered 200; the second is not read yet.
    expect(pageFault({ statusCode: 200, continuationToken: token(['80', 'FF', undefined], ['', '80', '"4"']) }, null)).toBeUndefined();
    // A 304 visited every range.
    expect(pageFault({ statusCode: 304, continuationToken: token(['', '80', '"4"'], ['80', 'FF', undefined]) }, null)).toMatch(/lost the position of range 80-FF/);
    // Later: a range that still had none, read (and 410'd) before another answered 200.
    const before = token(['80', 'FF', undefined], ['', '80', '"4"']);
    expect(pageFault({ statusCode: 200, continuationToken: token(['80', 'FF', undefined], ['', '80', '"5"']) }, before)).toMatch(/lost the position of range 80-FF/);
    expect(pageFault({ statusCode: 200, continuationToken: token(['', '80', '"4"'], ['80', 'FF', '"9"']) }, before)).toBeUndefined();
  });
});
