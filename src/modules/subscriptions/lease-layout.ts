import type { EpkBounds } from './sdk-adapter.js';

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

/** Orders EPKs as Cosmos DB does: `""` first, `"FF"` last, hex strings in between by value. */
export function compareEpk(x: string, y: string): number {
  return x < y ? -1 : x > y ? 1 : 0;
}
