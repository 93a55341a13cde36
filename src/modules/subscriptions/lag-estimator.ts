import type { Container, FeedRange } from '@azure/cosmos';
import { estimatePending, positionParts, probe, type FeedPosition, type FeedProbe } from './change-feed-reader.js';
import { rangeKey, toStoredStart, type LeaseStore } from './lease-store.js';
import type { EpkBounds } from './sdk-adapter.js';
import { SubscriptionTimeoutError } from './subscriptions.errors.js';
import type { RangeLag, StartFrom, SubscriberLag } from './subscriptions.interfaces.js';
import { sleep } from './sleep.js';

type Range = EpkBounds;

/** What the lag estimator needs of its group. */
export interface LagEstimatorDeps {
  name: string;
  /** The readers' handle on the events container (see `changeFeedContainer`). */
  events: Container;
  store: LeaseStore;
  startFrom: StartFrom;
  pollIntervalMs: number;
  missingRanges(leases: ReadonlyArray<{ feedRange: Range }>): Promise<Range[]>;
  feedRangeOf(range: Range): Promise<FeedRange>;
}

/**
 * How far a consumer group is behind, from its checkpoints: one query for the leases, then one change feed
 * request per range a checkpoint names (a split the SDK finds is followed through the ranges its answer
 * names), and no metadata request. LSNs as Cosmos DB's change feed estimator uses them.
 */
export class LagEstimator {
  constructor(private readonly deps: LagEstimatorDeps) {}

  async lag(): Promise<SubscriberLag> {
    const { group, leases } = await this.deps.store.list();
    const now = Date.now();
    // A feed range without a lease (not created yet, or its creation was interrupted) is pending from its start.
    const start = leases[0]?.startFrom ?? toStoredStart(this.deps.startFrom, now);
    const positions: Array<{ range: Range; owner?: string; position: FeedPosition }> = [
      ...leases.map((l) => ({
        range: l.feedRange,
        owner: l.owner && l.expiresAt > now ? l.owner : undefined,
        position: { continuation: l.continuation, startFrom: l.startFrom },
      })),
      ...(await this.deps.missingRanges(leases)).map((range) => ({ range, position: { continuation: null, startFrom: start } })),
    ];
    // No partition listing: each lease is looked at per range its own checkpoint names (see `probeParts`).
    const partitions: EpkBounds[] = [];
    const ranges: RangeLag[] = await Promise.all(
      positions.map(async ({ range, owner, position }) => {
        const parts = await this.probeParts(range, position, partitions);
        const lag: RangeLag = { range: rangeKey(range), estimatedPending: parts.reduce((sum, { probe }) => sum + estimatePending(probe), 0) };
        if (owner) lag.owner = owner;
        const oldest = Math.min(...parts.map(({ probe }) => probe.oldestPendingAt?.getTime() ?? Number.POSITIVE_INFINITY));
        if (Number.isFinite(oldest)) lag.oldestPendingAt = new Date(oldest);
        return lag;
      }),
    );
    const oldest = Math.min(...ranges.map((r) => r.oldestPendingAt?.getTime() ?? Number.POSITIVE_INFINITY));
    const lag: SubscriberLag = {
      name: this.deps.name,
      state: leases.length === 0 || !group ? 'not-started' : group.state,
      estimatedPending: ranges.reduce((sum, r) => sum + r.estimatedPending, 0),
      behindMs: Number.isFinite(oldest) ? Math.max(0, now - oldest) : 0,
      parkedAggregates: leases.flatMap((l) => (l.parked ?? []).map((p) => p.aggregateId)),
      ranges,
    };
    if (group?.reason && group.state === 'stopped') lag.reason = group.reason;
    if (group?.state === 'stopped' && leases.length > 0) lag.stoppedBy = group.stoppedBy ?? 'failure';
    return lag;
  }

  /** Resolves once every change committed before the call is checkpointed. */
  async waitForCatchUp(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    // The latest LSN of each physical partition when the call began: LSNs are per partition, so a lease whose
    // range split since its creation is looked at partition by partition.
    let targets: Array<{ range: EpkBounds; lsn: number | undefined }> | undefined;
    for (;;) {
      const { leases } = await this.deps.store.list();
      // A feed range without a lease is pending: nobody reads it until its lease exists.
      if (leases.length > 0 && (await this.deps.missingRanges(leases)).length === 0) {
        const partitions: EpkBounds[] = [];
        const probes = (
          await Promise.all(
            leases.map((l) => this.probeParts(l.feedRange, { continuation: l.continuation, startFrom: l.startFrom }, partitions)),
          )
        ).flat();
        const known = (targets ??= probes.map(({ part, probe }) => ({ range: part, lsn: probe.latestLsn })));
        const caughtUp = probes.every(({ part, probe }) => {
          if (probe.caughtUp) return true;
          // A partition that split since the call has its parent's target: a child goes on with its parent's LSNs.
          const target = known.find((t) => t.range.minInclusive <= part.minInclusive && part.maxExclusive <= t.range.maxExclusive);
          if (!target) {
            known.push({ range: part, lsn: probe.latestLsn });
            return false;
          }
          return target.lsn !== undefined && probe.firstPendingLsn !== undefined && probe.firstPendingLsn > target.lsn;
        });
        if (caughtUp) return;
      }
      if (Date.now() > deadline) {
        const lag = await this.lag().catch(() => undefined);
        throw new SubscriptionTimeoutError(
          `${this.deps.name} did not catch up within ${timeoutMs} ms` +
            (lag ? ` (state ${lag.state}, about ${lag.estimatedPending} change(s) pending${lag.reason ? `: ${lag.reason}` : ''})` : ''),
        );
      }
      await sleep(Math.min(this.deps.pollIntervalMs, 200));
    }
  }

  /**
   * Looks at what follows `position` in each range its checkpoint names (one per physical partition the reader
   * knew; see `positionParts`), with no partition listing: a split since is followed by the SDK inside a part.
   */
  private async probeParts(
    range: Range,
    position: FeedPosition,
    partitions: readonly EpkBounds[],
    depth = 0,
  ): Promise<Array<{ part: EpkBounds; probe: FeedProbe }>> {
    const probed = await Promise.all(
      positionParts(range, position, partitions).map(async (part) => ({
        part,
        probe: await probe(this.deps.events, await this.deps.feedRangeOf(part.range), part.position),
      })),
    );
    const results: Array<{ part: EpkBounds; probe: FeedProbe }> = [];
    for (const { part, probe: result } of probed) {
      // The SDK found the part split (its answer names several ranges): LSNs are per partition, so each child
      // is looked at on its own, cut along the ranges the SDK now knows (no listing of ours).
      const children = result.ranges?.filter((r) => r.minInclusive < part.range.maxExclusive && part.range.minInclusive < r.maxExclusive) ?? [];
      if (depth < 2 && children.length > 1) results.push(...(await this.probeParts(part.range, part.position, children, depth + 1)));
      else results.push({ part: part.range, probe: result });
    }
    return results;
  }

}
