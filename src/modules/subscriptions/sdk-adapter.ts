import type { ChangeFeedIteratorResponse, Container, FeedRange } from '@azure/cosmos';

/*
 * Every use of @azure/cosmos internals by the subscriptions lives here: the feed range class (the SDK reads a
 * feed range only as an instance of its own class, which it does not export), and the shape of its change
 * feed continuation (a composite token with one position per range it reads). `checkSdkInternals` tells,
 * loudly and by name, when a newer SDK changed either.
 */

/** A feed range by its effective partition key bounds. */
export interface EpkBounds {
  minInclusive: string;
  maxExclusive: string;
}

/** One range's position in @azure/cosmos's change feed continuation. */
export interface ContinuationElement extends EpkBounds {
  continuationToken?: string | null;
}

/** @azure/cosmos's change feed continuation: the container's rid and one continuation per range it reads. */
export interface CompositeContinuation {
  rid: string;
  Continuation: ContinuationElement[];
}

/** A change feed continuation in the SDK's composite shape, or undefined when it has another. */
export function parseComposite(continuation: string): CompositeContinuation | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(continuation);
  } catch {
    return undefined;
  }
  const token = parsed as Partial<CompositeContinuation> | null;
  const valid =
    typeof token?.rid === 'string' &&
    Array.isArray(token.Continuation) &&
    token.Continuation.every((e) => typeof e?.minInclusive === 'string' && typeof e.maxExclusive === 'string');
  return valid ? (token as CompositeContinuation) : undefined;
}

/**
 * Why a change feed page must not be handled or checkpointed, or undefined when it may.
 *
 * @azure/cosmos 4.9 (`ChangeFeedForEpkRange`) turns every 410 answer into a normal-looking response: only
 * sub-status 1002/1007 count as a split there; for any other 410 (none, 1000, 1008) it leaves that range's
 * position empty in the continuation, and a checkpoint of it would read the range again from its start (or,
 * in the same iterator, from its start time or "now" again, skipping what came in between). So a page is good
 * only when it answered 200 or 304 and every range the SDK read for it has a position in its continuation.
 *
 * Which ranges it read: one `readNext` visits the ranges of its queue in turn, moving each to the back, until
 * one answers 200 (that answer is returned) or all were visited (a 304). So after a 304 every range must have
 * a position; after a 200, the last `k` of the continuation, where the new order is the previous one (the
 * iterator's start: `previous`, or the ranges by their bounds for a fresh start) turned by `k`. Ranges not
 * visited yet may have none (a fresh lease over several ranges). When the queue changed otherwise (a split),
 * a range that had a position before must still have one.
 */
export function pageFault(page: Pick<ChangeFeedIteratorResponse<unknown>, 'statusCode' | 'subStatusCode' | 'continuationToken'>, previous: string | null): string | undefined {
  if (page.statusCode !== 200 && page.statusCode !== 304) {
    return `the change feed answered ${page.statusCode}${page.subStatusCode ? `/${page.subStatusCode}` : ''}`;
  }
  const after = page.continuationToken ? parseComposite(page.continuationToken) : undefined;
  if (!after || after.Continuation.length === 0) return 'the change feed answered without a continuation';
  const lost = (element: ContinuationElement) => `the change feed lost the position of range ${element.minInclusive}-${element.maxExclusive}`;
  const before = previous ? parseComposite(previous) : undefined;
  if (previous && !before) return undefined; // not the SDK's shape: nothing to compare (checkSdkInternals tells)
  const elements = after.Continuation;
  if (page.statusCode === 304) {
    const missing = elements.find((e) => !e.continuationToken);
    return missing ? lost(missing) : undefined;
  }
  const key = (e: EpkBounds) => `${e.minInclusive}\u0000${e.maxExclusive}`;
  const start = before ? before.Continuation.map(key) : elements.map(key).sort();
  const visited = visitedCount(start, elements.map(key));
  if (visited !== undefined) {
    const missing = elements.slice(elements.length - visited).find((e) => !e.continuationToken);
    if (missing) return lost(missing);
  }
  for (const element of elements) {
    if (element.continuationToken || !before) continue;
    // A range without a position now: only fine where every range it came from had none either.
    const had = before.Continuation.some(
      (b) => b.continuationToken && b.minInclusive < element.maxExclusive && element.minInclusive < b.maxExclusive,
    );
    if (had) return lost(element);
  }
  return undefined;
}

/** How many ranges one `readNext` visited: the `k` (1..n) that turns `start` into `now`, or undefined when none does. */
function visitedCount(start: readonly string[], now: readonly string[]): number | undefined {
  const n = start.length;
  if (n === 0 || now.length !== n) return undefined;
  for (let k = 1; k <= n; k++) {
    if (now.every((item, i) => item === start[(i + k) % n])) return k;
  }
  return undefined;
}

type FeedRangeClass = new (minInclusive: string, maxExclusive: string) => FeedRange;

/**
 * Makes the SDK's feed range objects for any bounds. @azure/cosmos accepts only its own (internal) class in
 * `ChangeFeedStartFrom` and offers no public constructor, so the class is taken from a range it handed out.
 */
export class FeedRanges {
  private classOf?: Promise<FeedRangeClass>;

  /**
   * `container`: one of the SDK whose class is wanted; `list`: its feed ranges (e.g. a cached
   * `container.getFeedRanges()`), asked only when no range of that SDK was seen in this process yet (the
   * start-up self-test sees one), so a new instance's `lag()` sends no metadata request.
   */
  constructor(
    private readonly container: Container,
    private readonly list: () => Promise<readonly FeedRange[]>,
  ) {}

  async of(bounds: EpkBounds): Promise<FeedRange> {
    const Class =
      FEED_RANGE_CLASSES.get(this.container.constructor) ??
      (await (this.classOf ??= this.list()
        .then(([any]) => feedRangeClass(this.container, any))
        .catch((err: unknown) => {
          this.classOf = undefined;
          throw err;
        })));
    return new Class(bounds.minInclusive, bounds.maxExclusive);
  }
}

/** The feed range class of each copy of the SDK in the process (keyed by its `Container` class): a class is the SDK's, not an account's. */
const FEED_RANGE_CLASSES = new WeakMap<object, FeedRangeClass>();

function feedRangeClass(container: Container, sample: FeedRange | undefined): FeedRangeClass {
  if (!sample) throw new SdkInternalsError('feed range class', 'Container.getFeedRanges() returned no range to take the class from');
  const Class = sample.constructor as FeedRangeClass;
  FEED_RANGE_CLASSES.set(container.constructor, Class);
  return Class;
}

/** A part of @azure/cosmos's internals the subscriptions rely on is not as expected: the SDK changed. */
export class SdkInternalsError extends Error {
  constructor(
    readonly part: string,
    detail: string,
  ) {
    super(`@azure/cosmos internals changed (${part}): ${detail}; nest-cosmos-eventstore's subscriptions need updating for this SDK version`);
    this.name = 'SdkInternalsError';
  }
}

/**
 * Checks every SDK internal the subscriptions use against a live container: the feed range class builds a
 * range with the given bounds that the SDK accepts, and a change feed continuation has the composite shape.
 * Throws `SdkInternalsError` naming the part that changed. Costs one partition key range listing and one
 * change feed read.
 */
export async function checkSdkInternals(container: Container): Promise<void> {
  const { ChangeFeedStartFrom } = await import('@azure/cosmos');
  const ranges = await container.getFeedRanges();
  const Class = feedRangeClass(container, ranges[0]);
  const bounds = ranges[0] as unknown as Partial<EpkBounds>;
  if (typeof bounds.minInclusive !== 'string' || typeof bounds.maxExclusive !== 'string') {
    throw new SdkInternalsError('feed range class', 'a feed range has no string minInclusive/maxExclusive');
  }
  const made = new Class('', 'FF') as unknown as Partial<EpkBounds>;
  if (made.minInclusive !== '' || made.maxExclusive !== 'FF') {
    throw new SdkInternalsError('feed range class', 'its constructor no longer takes (minInclusive, maxExclusive)');
  }
  const internal = container.database.container(container.id) as unknown as { readInternal?: unknown };
  if (typeof internal.readInternal !== 'function') {
    throw new SdkInternalsError('container rid cache', 'Container.readInternal is gone: change feed iterators may read the container per probe');
  }
  let page: ChangeFeedIteratorResponse<unknown>;
  try {
    page = await changeFeedContainer(container)
      .items.getChangeFeedIterator({ changeFeedStartFrom: ChangeFeedStartFrom.Now(made as unknown as FeedRange), maxItemCount: 1 })
      .readNext();
  } catch (err) {
    throw new SdkInternalsError('feed range class', `the SDK refused a range built with it: ${err instanceof Error ? err.message : String(err)}`);
  }
  const token = page.continuationToken ? parseComposite(page.continuationToken) : undefined;
  if (!token || token.Continuation.length === 0) {
    throw new SdkInternalsError('change feed continuation', `not the composite {rid, Continuation[]} shape: ${String(page.continuationToken)}`);
  }
  if (page.statusCode !== 200 && page.statusCode !== 304) {
    throw new SdkInternalsError('change feed response', `a read from "now" answered status ${String(page.statusCode)}`);
  }
}

/**
 * A handle on `container` for the change feed readers whose container read is answered once: @azure/cosmos
 * 4.9 reads the container (a metadata request, throttled by Azure at high rates) at the first `readNext` of
 * every change feed iterator, only to learn its `_rid`, which never changes for the container. The readers
 * and the lag probes make a new iterator per position, so without this every probe costs a metadata
 * request. A separate `Container` object of the same client: the application's own `read()` still reads.
 */
export function changeFeedContainer(container: Container): Container {
  const own = container.database.container(container.id);
  const internal = own as unknown as { readInternal?: (...args: unknown[]) => Promise<unknown> };
  if (typeof internal.readInternal !== 'function') {
    // A newer SDK: no cache, every iterator reads the container again (more metadata requests, still right).
    return own;
  }
  const read = internal.readInternal.bind(own);
  // One answer per client and container in the process: every group's handle (and the start-up self-test's)
  // shares it, so a new instance's first probe sends no container read either.
  let reads = CONTAINER_READS.get(container.database.client);
  if (!reads) CONTAINER_READS.set(container.database.client, (reads = new Map()));
  const cache = reads;
  internal.readInternal = (...args: unknown[]) => {
    let result = cache.get(own.url);
    if (!result) {
      result = read(...args);
      cache.set(own.url, result);
      const settled = result;
      settled.catch(() => {
        if (cache.get(own.url) === settled) cache.delete(own.url);
      });
    }
    return result;
  };
  return own;
}

/** The container reads `changeFeedContainer` answers from, per client and container URL. */
const CONTAINER_READS = new WeakMap<object, Map<string, Promise<unknown>>>();
