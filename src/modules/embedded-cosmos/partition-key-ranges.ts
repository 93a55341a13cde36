import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/*
 * Which physical partition (partition key range) holds a partition key value is decided by its effective
 * partition key (EPK): a hash of the value that the SDK computes too, to route bulk operations and to match
 * feed ranges. The server must agree with the SDK bit for bit, so it takes the SDK's own hash rather than a
 * second implementation that could drift. The module is internal to @azure/cosmos (not in its `exports`),
 * hence the exact version pin in package.json and the narrow type below.
 */
const require = createRequire(import.meta.url);
const sdkRoot = dirname(require.resolve('@azure/cosmos'));
const { hashPartitionKey } = require(join(sdkRoot, 'utils/hashing/hash.js')) as {
  hashPartitionKey(values: unknown[], definition: { paths?: string[]; kind?: string; version?: number }): string;
};

/** One physical partition as `GET .../pkranges` describes it. */
export interface PartitionKeyRange {
  id: string;
  /** Inclusive lower bound of the EPKs it holds; `""` for the first range. */
  minInclusive: string;
  /** Exclusive upper bound; `"FF"` for the last range. */
  maxExclusive: string;
}

export const MIN_EPK = '';
export const MAX_EPK = 'FF';

/**
 * `count` ranges covering the whole EPK space, cut evenly. A version-2 hash is 32 hex digits with the top two
 * bits cleared (at most `3FFF…`), so the cuts divide [0, 2^126); the first range starts at `""` and the last
 * ends at `"FF"`, as Cosmos DB's do.
 */
export function evenPartitionKeyRanges(count: number): PartitionKeyRange[] {
  const space = 1n << 126n;
  const bound = (i: number) => ((space * BigInt(i)) / BigInt(count)).toString(16).toUpperCase().padStart(32, '0');
  return Array.from({ length: count }, (_, i) => ({
    id: String(i),
    minInclusive: i === 0 ? MIN_EPK : bound(i),
    maxExclusive: i === count - 1 ? MAX_EPK : bound(i + 1),
  }));
}

/** The EPK of a partition key value under the container's partition key definition (as the SDK hashes it). */
export function effectivePartitionKey(
  value: unknown,
  definition: { paths?: string[]; kind?: string; version?: number } | undefined,
): string {
  // A container created without `version` is hashed with version 1, as Cosmos DB does.
  return hashPartitionKey([value], { kind: 'Hash', version: 1, ...definition });
}

/** `min <= epk < max`, comparing EPKs as Cosmos DB does (uppercase hex strings). */
export function epkInRange(epk: string, min: string, max: string): boolean {
  return epk >= min && epk < max;
}
