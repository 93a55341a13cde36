import type { LeaseDocument, LeaseStore, Stored } from './lease-store.js';
import { OwnedLease } from './owned-lease.js';
import { LeaseLostError } from './subscriptions.errors.js';

const held: Stored<LeaseDocument> = {
  id: 'lease:-FF',
  group: 'sub',
  type: 'lease',
  feedRange: { minInclusive: '', maxExclusive: 'FF' },
  owner: 'A',
  session: 's1',
  expiresAt: Date.now() + 60_000,
  requestedBy: null,
  continuation: null,
  startFrom: { kind: 'beginning' },
  checkpointedAt: null,
  _etag: 'e1',
};

/** An OwnedLease whose every write meets a changed document (412) and then reads `current`. */
function contended(current: Stored<LeaseDocument>) {
  const written: LeaseDocument[] = [];
  const store = {
    replace: (doc: LeaseDocument, etag: string) => {
      if (etag !== current._etag) return Promise.resolve(undefined);
      written.push(doc);
      return Promise.resolve({ ...doc, _etag: `${etag}+` });
    },
    read: () => Promise.resolve(current),
  } as unknown as LeaseStore;
  return { lease: new OwnedLease(store, held, { instanceId: 'A', session: 's1' }, 1_000), written };
}

describe('OwnedLease', () => {
  it('is lost when a process under the same instance id (another session) took the lease', async () => {
    const { lease, written } = contended({ ...held, session: 's2', _etag: 'e2' });
    await expect(lease.renew()).rejects.toBeInstanceOf(LeaseLostError);
    await expect(lease.checkpoint('c1')).rejects.toBeInstanceOf(LeaseLostError);
    expect(lease.lost).toBe(true);
    expect(lease.isValid()).toBe(false);
    expect(written).toEqual([]);
  });

  it('re-applies its write when the lease is still its own (someone only asked for it)', async () => {
    const { lease, written } = contended({ ...held, requestedBy: 'A', requestedSession: 's2', _etag: 'e2' });
    await lease.checkpoint('c1');
    expect(written).toEqual([expect.objectContaining({ owner: 'A', session: 's1', requestedSession: 's2', continuation: 'c1' })]);
    expect(lease.isValid()).toBe(true);
  });

  it('stops being valid a safety margin before its expiry', () => {
    const store = {} as LeaseStore;
    const lease = new OwnedLease(store, { ...held, expiresAt: Date.now() + 200 }, { instanceId: 'A', session: 's1' }, 1_000);
    expect(lease.marginMs).toBe(250);
    expect(lease.isValid()).toBe(false);
    const later = new OwnedLease(store, { ...held, expiresAt: Date.now() + 400 }, { instanceId: 'A', session: 's1' }, 1_000);
    expect(later.isValid()).toBe(true);
  });

  it('gives up a lease write that hangs after its timeout, shorter than the margin', async () => {
    const store = { replace: () => new Promise(() => {}), read: () => new Promise(() => {}) } as unknown as LeaseStore;
    const lease = new OwnedLease(store, held, { instanceId: 'A', session: 's1' }, 1_000);
    expect(lease.writeTimeoutMs).toBeLessThan(lease.marginMs);
    await expect(lease.renew()).rejects.toThrow(/took longer than 125 ms/);
    expect(lease.lost).toBe(false);
  });

  it('never queues a renewal behind a checkpoint: the renewal is the write in flight', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let replaces = 0;
    const store = {
      replace: async (doc: LeaseDocument, etag: string) => {
        replaces++;
        await gate;
        return { ...doc, _etag: `${etag}+` };
      },
    } as unknown as LeaseStore;
    const lease = new OwnedLease(store, held, { instanceId: 'A', session: 's1' }, 60_000);
    const checkpoint = lease.checkpoint('c1');
    const renewal = lease.renew();
    const again = lease.renew();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(replaces).toBe(1);
    release();
    await Promise.all([checkpoint, renewal, again]);
    expect(replaces).toBe(1);
    expect(lease.continuation).toBe('c1');
  });
});
