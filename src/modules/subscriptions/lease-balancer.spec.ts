import { balance, isFreeFor, type BalanceView } from './lease-balancer.js';
import { unclaimed, type Holder, type LeaseDocument, type Stored } from './lease-store.js';

const NOW = 1_000_000;
const LIVE = NOW + 30_000;
const EXPIRED = NOW - 1;
const me: Holder = { instanceId: 'A', session: 'a1' };

function lease(n: number, fields: Partial<LeaseDocument> = {}): Stored<LeaseDocument> {
  return {
    id: `lease:${n}`,
    group: 'sub',
    type: 'lease',
    feedRange: { minInclusive: String(n), maxExclusive: String(n + 1) },
    ...unclaimed({ kind: 'beginning' }),
    ...fields,
    _etag: `e${n}`,
  };
}

const heldBy = (holder: Holder, expiresAt = LIVE): Partial<LeaseDocument> => ({ owner: holder.instanceId, session: holder.session, expiresAt });

function plan(leases: Array<Stored<LeaseDocument>>, view: Partial<BalanceView> = {}) {
  return balance({ leases, me, now: NOW, reading: new Set(), windingDown: new Set(), ...view });
}

const ids = (leases: ReadonlyArray<{ id: string }>) => leases.map((l) => l.id).sort();

describe('balance', () => {
  it('an instance alone takes every lease and asks nobody for one', () => {
    const leases = Array.from({ length: 8 }, (_, i) => lease(i));
    const { share, take, request } = plan(leases);
    expect(share).toBe(8);
    expect(ids(take)).toEqual(ids(leases));
    expect(request(0)).toBeUndefined();
    expect(request(8)).toBeUndefined();
  });

  it('tries free leases in an order drawn at random, so instances starting together do not race for the same one', () => {
    const leases = [lease(0), lease(1), lease(2), lease(3)];
    expect(plan(leases, { random: () => 0.999 }).take.map((l) => l.id)).toEqual(['lease:0', 'lease:1', 'lease:2', 'lease:3']);
    expect(plan(leases, { random: () => 0 }).take.map((l) => l.id)).toEqual(['lease:1', 'lease:2', 'lease:3', 'lease:0']);
    // The listing it was given is left as it was.
    expect(leases.map((l) => l.id)).toEqual(['lease:0', 'lease:1', 'lease:2', 'lease:3']);
  });

  it('leaves out leases read here, running or winding down; only the running ones count against the share', () => {
    const leases = [lease(0, heldBy(me)), lease(1, heldBy(me)), lease(2), lease(3, heldBy({ instanceId: 'B', session: 'b1' }))];
    const { share, take, request } = plan(leases, { reading: new Set(['lease:0']), windingDown: new Set(['lease:1']) });
    expect(share).toBe(2);
    expect(ids(take)).toEqual(['lease:2']);
    expect(request(1)).toBeUndefined();
    // A lease of this very session that no reader here reads is nobody's work: free.
    expect(ids(plan(leases, { reading: new Set(['lease:0']) }).take)).toEqual(['lease:1', 'lease:2']);
  });

  it('a dead holder counts for nothing: its expired leases are free, the share is not divided with it, nobody asks it', () => {
    const dead = { instanceId: 'B', session: 'b1' };
    const leases = [lease(0, heldBy(dead, EXPIRED)), lease(1, heldBy(dead, NOW)), lease(2, heldBy(dead, EXPIRED)), lease(3)];
    const { share, take, request } = plan(leases);
    expect(share).toBe(4);
    expect(ids(take)).toEqual(ids(leases));
    expect(request(0)).toBeUndefined();
    // Live, the same holder keeps its leases and has its part of the share.
    const live = plan([lease(0, heldBy(dead)), lease(1, heldBy(dead, NOW + 1)), lease(2, heldBy(dead, EXPIRED)), lease(3)]);
    expect(live.share).toBe(2);
    expect(ids(live.take)).toEqual(['lease:2', 'lease:3']);
  });

  it('a lease under this instance id but another session is not free until it expires, and its holder counts as another instance', () => {
    const twin = { instanceId: 'A', session: 'a0' };
    expect(plan([lease(0, heldBy(twin)), lease(1)])).toMatchObject({ share: 1, take: [lease(1)] });
    expect(ids(plan([lease(0, heldBy(twin, EXPIRED)), lease(1)]).take)).toEqual(['lease:0', 'lease:1']);
    // Two processes under one other id are two instances to share with.
    const twins = [lease(0, heldBy({ instanceId: 'B', session: 'b1' })), lease(1, heldBy({ instanceId: 'B', session: 'b2' })), lease(2)];
    expect(plan(twins).share).toBe(1);
    // Written before sessions existed: nobody can say whose it is.
    expect(isFreeFor(lease(0, { owner: 'A', session: undefined, expiresAt: LIVE }), me, NOW)).toBe(false);
    expect(isFreeFor(lease(0, { owner: 'A', session: undefined, expiresAt: EXPIRED }), me, NOW)).toBe(true);
  });

  it('a lease handed over on request is free only for its requester, instance id and session, until it expires', () => {
    const reserved = (requestedBy: string, requestedSession: string, expiresAt = LIVE) => lease(0, { requestedBy, requestedSession, expiresAt });
    expect(isFreeFor(reserved('A', 'a1'), me, NOW)).toBe(true);
    expect(isFreeFor(reserved('B', 'b1'), me, NOW)).toBe(false);
    expect(isFreeFor(reserved('A', 'a0'), me, NOW)).toBe(false);
    expect(isFreeFor(reserved('B', 'b1', EXPIRED), me, NOW)).toBe(true);
    expect(plan([reserved('B', 'b1')]).take).toEqual([]);
    expect(plan([reserved('A', 'a1')]).take).toHaveLength(1);
    // Still held by the asked instance: not free, whoever asked.
    expect(isFreeFor(lease(0, { ...heldBy({ instanceId: 'B', session: 'b1' }), requestedBy: 'A', requestedSession: 'a1' }), me, NOW)).toBe(false);
  });

  it('asks the busiest holder for a lease only when it reads at least two more than this instance', () => {
    const b = { instanceId: 'B', session: 'b1' };
    const c = { instanceId: 'C', session: 'c1' };
    // B 3, C 2, this one 0: share 2; B is the one asked.
    const uneven = [lease(0, heldBy(c)), lease(1, heldBy(b)), lease(2, heldBy(c)), lease(3, heldBy(b)), lease(4, heldBy(b))];
    const { share, take, request } = plan(uneven);
    expect(share).toBe(2);
    expect(take).toEqual([]);
    expect(request(0)).toMatchObject({ id: 'lease:1', owner: 'B' });
    // B 2, this one 1 (and C 1): one more is no imbalance worth a hand-over.
    const close = [lease(0, heldBy(b)), lease(1, heldBy(b)), lease(2, heldBy(c)), lease(3, heldBy(me))];
    expect(plan(close, { reading: new Set(['lease:3']) }).request(1)).toBeUndefined();
    // At its share, this instance asks nobody, however many the busiest reads: those short of theirs ask.
    const crowded = [
      ...[0, 1, 2, 3, 4, 5].map((n) => lease(n, heldBy(b))),
      ...[6, 7, 8].map((n) => lease(n, heldBy(me))),
      ...['C', 'D', 'E'].map((id, i) => lease(9 + i, heldBy({ instanceId: id, session: id }))),
    ];
    const atShare = plan(crowded, { reading: new Set(['lease:6', 'lease:7', 'lease:8']) });
    expect(atShare.share).toBe(3);
    expect(atShare.request(3)).toBeUndefined();
    expect(atShare.request(2)).toMatchObject({ owner: 'B' });
  });

  it('decides the request on what the takes left: a take that failed can make one worth asking for', () => {
    const b = { instanceId: 'B', session: 'b1' };
    const { share, take, request } = plan([lease(0, heldBy(b)), lease(1, heldBy(b)), lease(2)]);
    expect(share).toBe(2);
    expect(ids(take)).toEqual(['lease:2']);
    expect(request(1)).toBeUndefined();
    expect(request(0)).toMatchObject({ id: 'lease:0' });
    expect(request(2)).toBeUndefined();
  });

  it('never asks for a lease already asked for', () => {
    const b = { instanceId: 'B', session: 'b1' };
    const asked = { requestedBy: 'C', requestedSession: 'c1' };
    const some = [lease(0, { ...heldBy(b), ...asked }), lease(1, { ...heldBy(b), ...asked }), lease(2, heldBy(b)), lease(3, heldBy(b))];
    expect(plan(some).request(0)).toMatchObject({ id: 'lease:2' });
    const all = some.map((l) => lease(Number(l.id.slice('lease:'.length)), { ...heldBy(b), ...asked }));
    expect(plan(all).request(0)).toBeUndefined();
  });

  it.each([
    [8, 1],
    [8, 2],
    [8, 3],
    [8, 5],
    [8, 8],
    [8, 10],
    [5, 4],
  ])('%i leases, %i instances joining one by one: they converge to the rounded-up share and stay there', (count, instances) => {
    const holders = Array.from({ length: instances }, (_, i) => ({ instanceId: `I${i}`, session: `s${i}` }));
    const group = simulate(count, holders, 300);
    const counts = holders.map((h) => group.readBy(h).length);
    expect(counts.reduce((x, y) => x + y, 0)).toBe(count);
    expect(Math.max(...counts)).toBe(Math.ceil(count / instances));
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    // Settled: more rounds move nothing.
    const before = JSON.stringify(group.leases.map((l) => [l.owner, l.session]));
    group.run(20);
    expect(JSON.stringify(group.leases.map((l) => [l.owner, l.session]))).toBe(before);
  });
});

/**
 * A group's leases and instances that act on them as `SubscriberGroup` does, every take succeeding: each
 * round an instance hands over the leases asked of it, renews the rest, takes and asks as `balance` says.
 * Instances join one every few rounds; a lease lasts ten rounds.
 */
function simulate(count: number, holders: Holder[], rounds: number) {
  const duration = 10;
  let now = 1;
  let seed = 42;
  // A fixed draw, so a failure replays.
  const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const leases = Array.from({ length: count }, (_, i) => lease(i));
  const readBy = (h: Holder) => leases.filter((l) => l.owner === h.instanceId && l.session === h.session && l.expiresAt > now);
  const round = (holder: Holder) => {
    for (const l of readBy(holder)) {
      const asked = l.requestedBy !== null && !(l.requestedBy === holder.instanceId && l.requestedSession === holder.session);
      // The asked instance finishes its page and releases; the lease stays reserved for the one that asked.
      Object.assign(l, asked ? { owner: null, session: null, expiresAt: now + duration } : { expiresAt: now + duration });
    }
    const reading = new Set(readBy(holder).map((l) => l.id));
    const plan = balance({ leases, me: holder, now, reading, windingDown: new Set(), random });
    let mine = reading.size;
    for (const l of plan.take) {
      if (mine >= plan.share) break;
      Object.assign(l, { owner: holder.instanceId, session: holder.session, expiresAt: now + duration, requestedBy: null, requestedSession: null });
      mine++;
    }
    const asked = plan.request(mine);
    if (asked) Object.assign(asked, { requestedBy: holder.instanceId, requestedSession: holder.session });
  };
  let tick = 0;
  const run = (n: number) => {
    for (let i = 0; i < n; i++, tick++, now++) {
      for (const h of holders.slice(0, Math.floor(tick / 3) + 1)) round(h);
    }
  };
  run(rounds);
  return { leases, readBy, run };
}
