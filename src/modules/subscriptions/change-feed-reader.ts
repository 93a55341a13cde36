import { ChangeFeedStartFrom, type ChangeFeedPullModelIterator, type Container, type FeedRange } from '@azure/cosmos';
import type { StoredStart } from './lease-store.js';
import { pageFault, parseComposite, type EpkBounds } from './sdk-adapter.js';

export type { EpkBounds } from './sdk-adapter.js';

/** An event document of the events container as the change feed hands it out (SPEC §3 plus system fields). */
interface FeedItem {
  a?: unknown;
  v?: unknown;
  d?: unknown;
  y?: unknown;
  r?: unknown;
  _ts?: unknown;
  _lsn?: unknown;
}

/** One event read from the change feed, decoded from its document. */
export interface FeedEvent {
  aggregateId: string;
  version: number;
  data: Uint8Array;
  committedAt: Date;
  /** The event's type as the store keeps it beside the payload (field `y`), when it does (the erasure's tombstone). */
  type?: string;
}

/** Where a reader stands in one feed range: a change feed continuation, or where to begin without one. */
export interface FeedPosition {
  continuation: string | null;
  startFrom: StoredStart;
}

/** A pull-model iterator over one feed range from `position`. */
export function changeFeedIterator(
  events: Container,
  range: FeedRange,
  position: FeedPosition,
  maxItemCount: number,
): ChangeFeedPullModelIterator<FeedItem> {
  return events.items.getChangeFeedIterator<FeedItem>({ changeFeedStartFrom: startOf(range, position), maxItemCount });
}

function startOf(range: FeedRange, { continuation, startFrom }: FeedPosition): ChangeFeedStartFrom {
  if (continuation) return ChangeFeedStartFrom.Continuation(continuation);
  if (startFrom.kind === 'time') return ChangeFeedStartFrom.Time(new Date(startFrom.at), range);
  return ChangeFeedStartFrom.Beginning(range);
}

/**
 * The events of a change feed page in the order to hand them out: by commit (`_lsn`) and, inside one commit
 * (a transactional batch, whose items Cosmos DB returns in no particular order), by version. Documents that
 * are not events (no string `a`, no integer `v`) are never returned; those other than an aggregate's tip
 * document (id `tip`) are counted.
 */
export function eventsOfPage(items: readonly unknown[]): { events: FeedEvent[]; foreign: number } {
  const keyed: Array<{ event: FeedEvent; lsn: number; index: number }> = [];
  let foreign = 0;
  items.forEach((item, index) => {
    const { a, v, d, y, r, _ts, _lsn } = (item ?? {}) as FeedItem;
    if (typeof a !== 'string' || typeof v !== 'number' || !Number.isSafeInteger(v)) {
      // An aggregate's "tip" (id `tip`, no numeric `v`, rewritten by every command) and the stub a truncation
      // leaves in place of version 1 (a numeric `r`) are expected: skipped silently. Anything else is
      // counted, for a warning.
      if ((item as { id?: unknown } | null)?.id !== 'tip' && typeof r !== 'number') foreign++;
      return;
    }
    const bytes = typeof d === 'string' ? Buffer.from(d, 'base64') : Buffer.alloc(0);
    const event: FeedEvent = {
      aggregateId: a,
      version: v,
      data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      committedAt: new Date(typeof _ts === 'number' ? _ts * 1000 : 0),
    };
    if (typeof y === 'string') event.type = y;
    keyed.push({
      event,
      lsn: typeof _lsn === 'number' ? _lsn : index,
      index,
    });
  });
  keyed.sort((x, y) => x.lsn - y.lsn || (x.event.aggregateId === y.event.aggregateId ? x.event.version - y.event.version : x.index - y.index));
  return { events: keyed.map((k) => k.event), foreign };
}

/** A reader's position in one physical partition's share of its feed range. */
export interface PositionPart {
  range: EpkBounds;
  position: FeedPosition;
}

/**
 * A position in `range` cut along the container's physical partitions now (`partitions`), each part with its
 * own position. After a split a lease's range spans several partitions, each with its own LSN sequence, and
 * one look at the whole range shows only the first partition with changes: to tell what is left, each part
 * is looked at on its own. A checkpoint lists one continuation per range the reader knew, which may since
 * have split too; a child goes on from its parent's continuation, as the SDK does on a 410/1002, which is
 * valid there because a child continues its parent's LSN sequence. A continuation of another shape is left
 * whole.
 */
export function positionParts(range: EpkBounds, position: FeedPosition, partitions: readonly EpkBounds[]): PositionPart[] {
  const pieces = (bounds: EpkBounds) =>
    partitions
      .map((p) => ({
        minInclusive: p.minInclusive > bounds.minInclusive ? p.minInclusive : bounds.minInclusive,
        maxExclusive: p.maxExclusive < bounds.maxExclusive ? p.maxExclusive : bounds.maxExclusive,
      }))
      .filter((p) => p.minInclusive < p.maxExclusive);
  if (position.continuation === null) {
    const parts = pieces(range).map((part) => ({ range: part, position }));
    return parts.length > 0 ? parts : [{ range, position }];
  }
  const token = parseComposite(position.continuation);
  if (!token) return [{ range, position }];
  const parts = token.Continuation.flatMap((element) => {
    const own = pieces(element);
    return (own.length > 0 ? own : [{ minInclusive: element.minInclusive, maxExclusive: element.maxExclusive }]).map((part) => ({
      range: part,
      position: {
        continuation: JSON.stringify({ ...token, Continuation: [{ ...element, ...part }] }),
        startFrom: position.startFrom,
      },
    }));
  });
  return parts.length > 0 ? parts : [{ range, position }];
}

/** What one look at a feed range from a position tells about what is left to read. */
export interface FeedProbe {
  /** Nothing after the position. */
  caughtUp: boolean;
  /** LSN of the first change after the position. */
  firstPendingLsn?: number;
  /** The range's latest LSN, from the session token. */
  latestLsn?: number;
  oldestPendingAt?: Date;
  /** The ranges the answer's continuation names: more than one when the SDK found the range split. */
  ranges?: EpkBounds[];
}

/**
 * Reads one item after `position` (without moving any reader) to tell how far behind it is: the session
 * token carries the range's latest LSN and each item its own `_lsn`, as Cosmos DB's change feed estimator
 * uses them.
 */
export async function probe(events: Container, range: FeedRange, position: FeedPosition): Promise<FeedProbe> {
  const page = await changeFeedIterator(events, range, position, 1).readNext();
  // A 410 (or any answer but 200/304) says nothing about what is left: it is not "caught up".
  const fault = pageFault(page, position.continuation);
  if (fault) throw new Error(`probing the change feed failed: ${fault}`);
  const latestLsn = lsnOfSessionToken(page.sessionToken);
  const token = page.continuationToken ? parseComposite(page.continuationToken) : undefined;
  const ranges = token?.Continuation.map(({ minInclusive, maxExclusive }) => ({ minInclusive, maxExclusive }));
  const first = page.result?.[0];
  if (page.statusCode === 304 || !first) return { caughtUp: true, latestLsn, ranges };
  return {
    caughtUp: false,
    latestLsn,
    ranges,
    firstPendingLsn: typeof first._lsn === 'number' ? first._lsn : undefined,
    oldestPendingAt: typeof first._ts === 'number' ? new Date(first._ts * 1000) : undefined,
  };
}

/** Changes left, estimated from LSNs (at least 1 when something is pending). */
export function estimatePending(probe: FeedProbe): number {
  if (probe.caughtUp) return 0;
  if (probe.latestLsn === undefined || probe.firstPendingLsn === undefined) return 1;
  return Math.max(1, probe.latestLsn - probe.firstPendingLsn + 1);
}

/**
 * The global LSN of a session token (`<range>:<version>#<globalLsn>[#<region>=<lsn>...]`, comma-separated per
 * range); the highest when there are several.
 */
export function lsnOfSessionToken(token: string | undefined): number | undefined {
  if (!token) return undefined;
  let latest: number | undefined;
  for (const part of token.split(',')) {
    const lsn = Number(part.split(':')[1]?.split('#')[1]);
    if (Number.isSafeInteger(lsn)) latest = Math.max(latest ?? lsn, lsn);
  }
  return latest;
}
