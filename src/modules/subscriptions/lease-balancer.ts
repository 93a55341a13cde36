import { isHeldBy, isRequestedBy, type Holder, type LeaseDocument, type Stored } from './lease-store.js';

/** What one instance knows of its group when it balances: the leases as listed, and its own readers. */
export interface BalanceView {
  /** The group's leases, as one listing returned them. */
  leases: ReadonlyArray<Stored<LeaseDocument>>;
  /** This instance: the configured instance id and the session of the current start. */
  me: Holder;
  /** Epoch ms: a lease whose `expiresAt` is not after it has lapsed. */
  now: number;
  /** Ids of the leases this instance reads and keeps reading: its count against the share. */
  reading: ReadonlySet<string>;
  /** Ids of the leases whose reader here is winding down (handing over): not counted, and not free either. */
  windingDown: ReadonlySet<string>;
  /** Draws in [0, 1) for the shuffle of free leases; default `Math.random`. */
  random?: () => number;
}

/** What to do about the balance of the group's leases, decided from one listing (see `balance`). */
export interface BalancePlan {
  /** Leases per live instance, rounded up: this instance takes until it reads that many. */
  share: number;
  /**
   * Free leases to try, in this order, while fewer than `share` are read here. A take can fail (another
   * instance was quicker, or the group changed): the next one is tried then.
   */
  take: ReadonlyArray<Stored<LeaseDocument>>;
  /**
   * The lease to ask its holder to hand over once this instance reads `reading` leases after its takes, or
   * undefined: none while the share is met, and none unless the busiest holder has at least two more.
   */
  request(reading: number): Stored<LeaseDocument> | undefined;
}

/**
 * Decides, without touching the store, how one instance balances a group's leases: its share is the leases
 * divided among the live holders and itself, rounded up; it takes free leases (in random order, so
 * instances starting together do not all race for the same one) up to that share; still short, it asks the
 * busiest other holder for one of its leases nobody asked for yet, when that holder reads at least two more
 * (one more would only move the imbalance to the other side).
 */
export function balance(view: BalanceView): BalancePlan {
  const { leases, me, now } = view;
  // Live holders but this one, by instance id and session: two processes under one id are two instances.
  const others = new Map<string, Stored<LeaseDocument>[]>();
  for (const lease of leases) {
    if (lease.owner && !isHeldBy(lease, me) && lease.expiresAt > now) {
      const key = holderKey(lease);
      others.set(key, [...(others.get(key) ?? []), lease]);
    }
  }
  const share = Math.ceil(leases.length / (others.size + 1));
  const take = shuffle(
    leases.filter((l) => !view.reading.has(l.id) && !view.windingDown.has(l.id) && isFreeFor(l, me, now)),
    view.random ?? Math.random,
  );
  const [busiest = []] = [...others.values()].sort((x, y) => y.length - x.length);
  const candidate = busiest.find((l) => l.requestedBy === null);
  return {
    share,
    take,
    request: (reading) => (reading < share && busiest.length - reading >= 2 ? candidate : undefined),
  };
}

/**
 * Free for `me`: nobody holds it (or the holder let it expire), and it is not reserved for another instance
 * that asked for it. A lease held under our instance id but another session is someone else's: a live
 * process configured with the same id, or this process before a crash, which nobody can tell apart; either
 * way it waits for the expiry. One held by this very session without a reader here (`balance` leaves out
 * ranges with a reader, running or winding down) is nobody's work, so it is free.
 */
export function isFreeFor(lease: LeaseDocument, me: Holder, now: number): boolean {
  if (lease.owner) return isHeldBy(lease, me) || lease.expiresAt <= now;
  return lease.requestedBy === null || isRequestedBy(lease, me) || lease.expiresAt <= now;
}

/** Tells holders apart: the same for two leases exactly when one holder (instance id and session) holds both. */
export function holderKey(lease: LeaseDocument): string {
  return JSON.stringify([lease.owner, lease.session ?? null]);
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}
