import { parseComposite, type EpkBounds } from './sdk-adapter.js';

/**
 * The parts of `ranges` that no lease covers, as EPK ranges. A range is covered by the union of the leases
 * over it, not only by one lease holding it whole: after two physical partitions merge, the merged range is
 * covered by the two leases of its parents, and a lease over it would overlap both (history read again, two
 * readers on the same aggregates). A gap gets a lease of its own bounds only, so leases never overlap.
 */
export function uncovered(ranges: readonly EpkBounds[], leases: ReadonlyArray<{ feedRange: EpkBounds }>): EpkBounds[] {
  const taken = leases.map((l) => l.feedRange).sort((x, y) => compareEpk(x.minInclusive, y.minInclusive));
  const gaps: EpkBounds[] = [];
  for (const range of ranges) {
    let from = range.minInclusive;
    for (const lease of taken) {
      if (compareEpk(lease.maxExclusive, from) <= 0) continue;
      if (compareEpk(lease.minInclusive, range.maxExclusive) >= 0) break;
      if (compareEpk(lease.minInclusive, from) > 0) gaps.push({ minInclusive: from, maxExclusive: lease.minInclusive });
      if (compareEpk(lease.maxExclusive, from) > 0) from = lease.maxExclusive;
      if (compareEpk(from, range.maxExclusive) >= 0) break;
    }
    if (compareEpk(from, range.maxExclusive) < 0) gaps.push({ minInclusive: from, maxExclusive: range.maxExclusive });
  }
  return gaps;
}

/** Every effective partition key: the union of a container's feed ranges, however its partitions split or merged. */
export const WHOLE_HASH_SPACE: EpkBounds = { minInclusive: '', maxExclusive: 'FF' };

/** Orders EPKs as Cosmos DB does: `""` first, `"FF"` last, hex strings in between by value. */
export function compareEpk(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The end of the version-2 hash space that `"FF"` stands for (a v2 EPK is 32 hex digits below 2^126). */
const EPK_END = 1n << 126n;

function epkValue(epk: string): bigint | undefined {
  if (epk === '') return 0n;
  if (epk === 'FF') return EPK_END;
  return /^[0-9A-F]{32}$/.test(epk) ? BigInt(`0x${epk}`) : undefined;
}

function epkString(value: bigint): string {
  if (value === 0n) return '';
  if (value >= EPK_END) return 'FF';
  return value.toString(16).toUpperCase().padStart(32, '0');
}

/**
 * `range` cut into `parts` contiguous sub-ranges of the hash space (fewer when it is too narrow), or the range
 * whole when its bounds are not version-2 EPKs. An aggregate's events all have one EPK, so they all fall in
 * one sub-range: per-aggregate order holds whatever reads the others.
 */
export function cutRange(range: EpkBounds, parts: number): EpkBounds[] {
  const low = epkValue(range.minInclusive);
  const high = epkValue(range.maxExclusive);
  if (low === undefined || high === undefined || parts <= 1 || high - low < BigInt(parts)) return [range];
  const cuts = Array.from({ length: parts + 1 }, (_, i) => (i === 0 ? range.minInclusive : i === parts ? range.maxExclusive : epkString(low + ((high - low) * BigInt(i)) / BigInt(parts))));
  return Array.from({ length: parts }, (_, i) => ({ minInclusive: cuts[i], maxExclusive: cuts[i + 1] }));
}

/**
 * A change feed continuation narrowed to `sub` (a part of the range it was taken for): each range position it
 * holds clipped to `sub`, so a lease over `sub` resumes exactly where the whole range's reader was. Null for
 * null; undefined when the continuation is not the SDK's composite shape (the lease is then not cut).
 */
export function clipContinuation(continuation: string | null, sub: EpkBounds): string | null | undefined {
  if (continuation === null) return null;
  const token = parseComposite(continuation);
  if (!token) return undefined;
  const max = (x: string, y: string) => (compareEpk(x, y) >= 0 ? x : y);
  const min = (x: string, y: string) => (compareEpk(x, y) <= 0 ? x : y);
  const elements = token.Continuation.filter((e) => compareEpk(e.minInclusive, sub.maxExclusive) < 0 && compareEpk(sub.minInclusive, e.maxExclusive) < 0).map(
    (e) => ({ ...e, minInclusive: max(e.minInclusive, sub.minInclusive), maxExclusive: min(e.maxExclusive, sub.maxExclusive) }),
  );
  if (elements.length === 0) return undefined;
  return JSON.stringify({ ...token, Continuation: elements });
}
