import { LeaseLostError } from './subscriptions.errors.js';
import { isHeldBy, type Holder, type LeaseDocument, type LeaseStore, type ParkedAggregate, type Stored } from './lease-store.js';

/** Attempts at one lease write when others keep annotating the document (a hand-over request, say). */
const MAX_WRITE_ATTEMPTS = 10;

/**
 * A lease this instance holds. Every write (renewal, checkpoint, release) is conditional on the ETag last
 * seen; when it fails with 412 the document is read again: still ours (someone only asked for it) → the write
 * is re-applied on top; someone else's, reset, or gone → the lease is lost and the reader must stop at once.
 * Ours means our instance id and our session: a lease taken by another process under the same instance id
 * is someone else's. Writes are serialized, so a renewal and a checkpoint never race each other.
 */
export class OwnedLease {
  private doc: Stored<LeaseDocument>;
  private queue: Promise<unknown> = Promise.resolve();
  private lostFlag = false;
  /** Writes queued or running, and the last one queued (a renewal joins it rather than waiting behind it). */
  private writing = 0;
  private lastWrite: Promise<void> = Promise.resolve();
  /** The owner stops reading this long before the lease's expiry (see `isValid`). */
  readonly marginMs: number;
  /** Longest wait for one lease write or read: shorter than the margin. */
  readonly writeTimeoutMs: number;

  constructor(
    private readonly store: LeaseStore,
    doc: Stored<LeaseDocument>,
    private readonly holder: Holder,
    private readonly durationMs: number,
    safety: { marginMs?: number; writeTimeoutMs?: number } = {},
  ) {
    this.doc = doc;
    this.marginMs = safety.marginMs ?? Math.floor(durationMs / 4);
    this.writeTimeoutMs = safety.writeTimeoutMs ?? Math.max(1, Math.floor(this.marginMs / 2));
  }

  get id(): string {
    return this.doc.id;
  }

  get continuation(): string | null {
    return this.doc.continuation;
  }

  get document(): Readonly<Stored<LeaseDocument>> {
    return this.doc;
  }

  get lost(): boolean {
    return this.lostFlag;
  }

  /**
   * True while this instance may read the range: not lost, and more than the safety margin before expiry. An
   * instance that could not renew in time stops by itself a margin before anyone else may take the range
   * over, which also absorbs clock skew between instances smaller than the margin.
   */
  isValid(now = Date.now()): boolean {
    return !this.lostFlag && isHeldBy(this.doc, this.holder) && this.doc.expiresAt - this.marginMs > now;
  }

  /**
   * Extends the lease. Never waits behind a checkpoint: while a write is queued or running, the renewal is that
   * write (every checkpoint extends the lease too).
   */
  renew(): Promise<void> {
    if (this.writing > 0) return this.lastWrite;
    return this.write(() => {});
  }

  /** Writes the checkpoint and, when given, the parked aggregates (which go with it: see `LeaseDocument.parked`). */
  checkpoint(continuation: string | null, parked?: readonly ParkedAggregate[]): Promise<void> {
    return this.write((doc) => {
      if (continuation !== null) doc.continuation = continuation;
      doc.checkpointedAt = Date.now();
      if (parked) {
        if (parked.length > 0) doc.parked = [...parked];
        else delete doc.parked;
      }
    });
  }

  /**
   * Gives the lease up, keeping its checkpoint. Anyone may take it at once, except after a hand-over request:
   * then it stays reserved for the instance that asked, for one lease duration (so the owner, which may well
   * be the first to look again, does not simply take it back).
   */
  release(): Promise<void> {
    return this.write((doc) => {
      doc.owner = null;
      doc.session = null;
      doc.expiresAt = doc.requestedBy ? Date.now() + this.durationMs : 0;
    }, false);
  }

  private write(change: (doc: LeaseDocument) => void, keep = true): Promise<void> {
    const run = async () => {
      for (let attempt = 1; ; attempt++) {
        if (this.lostFlag || !isHeldBy(this.doc, this.holder)) {
          // Released (or lost) before: nothing of it is ours to write any more.
          this.lostFlag = true;
          throw new LeaseLostError(this.doc.id);
        }
        const next: LeaseDocument = { ...this.doc };
        change(next);
        if (keep) next.expiresAt = Date.now() + this.durationMs;
        const written = await this.timed('writing', this.store.replace(next, this.doc._etag));
        if (written) {
          this.doc = written;
          return;
        }
        const current = await this.timed('reading', this.store.read<LeaseDocument>(this.doc.id));
        if (!current || !isHeldBy(current, this.holder) || attempt >= MAX_WRITE_ATTEMPTS) {
          this.lostFlag = true;
          throw new LeaseLostError(this.doc.id);
        }
        this.doc = current;
      }
    };
    this.writing++;
    const result = this.queue.then(run, run).finally(() => this.writing--);
    this.queue = result.catch(() => undefined);
    this.lastWrite = result;
    return result;
  }

  /**
   * `request`, or a rejection after `writeTimeoutMs`: a lease write held by throttling (the SDK retries 429s
   * for up to 30 s) or a hung connection must not outlast the margin. A write that lands after its timeout
   * only moves the ETag: the next write meets 412, reads the lease, finds it ours and applies on top.
   */
  private timed<T>(what: string, request: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} lease ${this.doc.id} took longer than ${this.writeTimeoutMs} ms`)), this.writeTimeoutMs);
    });
    request.catch(() => undefined);
    return Promise.race([request, timeout]).finally(() => clearTimeout(timer));
  }
}
