import type { Container, JSONObject, OperationInput } from '@azure/cosmos';
import { randomUUID } from 'node:crypto';
import type { EventRecord, OperationOptions } from './event-store.interfaces.js';
import { ConcurrencyError, EventStoreError, ValidationError, WriteOutcomeUnknownError } from './event-store.errors.js';
import { chunkByLimits, nowSeconds, prepareEvents, validateRecords, type EventDocument, type PreparedEvent } from './event-documents.js';
import { MAX_BATCH_OPERATIONS, MAX_DOCUMENT_BYTES } from './cosmos-limits.js';
import { messageOf } from '../cosmos/index.js';
import { backoffMs, classifyBatchFailure, pause, retryTransient, sdkRetriedUnknownOutcome, type StoreRetryOptions } from './transient-faults.js';
import { checkPartitionKey, checkSignal } from './validation.js';

/**
 * The id of an aggregate's tip document in the events container. Event documents have the id
 * `String(version)`, so no event can take it.
 */
export const TIP_DOCUMENT_ID = 'tip';

/**
 * What an aggregate's tip holds (JSON mode): its version (the last event's), its current state and room
 * for what commands check against it. It is never an event: it has no `v`, never takes a version and never
 * shows in `load`, `history` or (once readers skip documents without a numeric `v`) the change feed.
 */
export interface TipBody {
  /** The version of the aggregate's last event. */
  version: number;
  /** The aggregate's state after that event, as JSON. */
  state: unknown;
  /** The aggregate's schema version, when it has one. */
  schemaVersion?: number;
  /** Reserved for idempotency records (issue 16): written in the same batch as the events they produced. */
  idempotency?: Record<string, unknown>;
}

/** The tip document as stored: id `tip`, partition key `a` = the stream id, no numeric `v`. */
export type TipDocument = {
  id: typeof TIP_DOCUMENT_ID;
  a: string;
  tip: TipBody;
  /** A fresh id per write: tells our own write from another writer's after a lost acknowledgement. */
  w: string;
  /** When every event the write stored expires: the tip expires with the newest (absolute epoch seconds, as events' `t`). */
  t?: number;
  ttl?: number;
};

/**
 * Gives the tip the expiry of the events written with it, when each of them expires: the newest event's. A
 * tip must not outlive its stream's events (it holds the state they make, and the idempotency keys).
 */
export function expireWithEvents(tipDoc: TipDocument, prepared: readonly PreparedEvent[], now = nowSeconds()): void {
  if (prepared.length === 0 || prepared.some((p) => !p.doc.t)) return;
  const expiry = Math.max(...prepared.map((p) => p.doc.t ?? 0));
  tipDoc.t = expiry;
  tipDoc.ttl = Math.max(1, expiry - now);
}

/** An expired tip reads as none (Cosmos DB purges expired items in the background, the embedded server never). */
export function isLiveTip(doc: Pick<TipDocument, 't'>, now = nowSeconds()): boolean {
  return !doc.t || doc.t > now;
}

/** A tip as read: its body and the etag a replace must match. */
export interface StoredTip {
  etag: string;
  tip: TipBody;
}

/** Options of `readTip`. */
export interface ReadTipOptions extends OperationOptions {
  /** The etag of a tip already held: an unchanged tip answers `'not-modified'` (Cosmos DB's 304). */
  ifNoneMatch?: string;
}

/** Options of `saveWithTip`. */
export interface SaveWithTipOptions extends OperationOptions {
  /** The etag of the tip the new one replaces; absent: the tip is created (the stream has none yet). */
  ifMatch?: string;
}

/**
 * An event store that keeps a tip document per stream, written in the same transactional batch as the
 * events (an optional capability: `isTipStore` tells).
 */
export interface TipStore {
  /** The stream's tip, `undefined` when it has none, `'not-modified'` when it still has `ifNoneMatch`'s etag. */
  readTip(aggregateId: string, options?: ReadTipOptions): Promise<StoredTip | 'not-modified' | undefined>;
  /**
   * Appends records and writes the tip in one transactional batch: all or nothing. A taken version, an
   * existing tip when `ifMatch` is absent, or a tip whose etag is no longer `ifMatch` fail the call with a
   * `ConcurrencyError` and store nothing. Resolves the new tip's etag; `undefined` when the write is known
   * to have landed (after a lost acknowledgement) but the tip has been replaced since.
   */
  saveWithTip(aggregateId: string, records: readonly EventRecord[], tip: TipBody, options?: SaveWithTipOptions): Promise<string | undefined>;
}

/** True when the store keeps tips (`TipStore`). */
export function isTipStore(store: unknown): store is TipStore {
  const s = store as Partial<TipStore> | null;
  return typeof s?.readTip === 'function' && typeof s.saveWithTip === 'function';
}

/** The tip document for a stream; refuses (before any request) one over Cosmos DB's item limit. */
export function toTipDocument(aggregateId: string, tip: TipBody): TipDocument {
  if (!Number.isSafeInteger(tip?.version) || tip.version < 1) throw new ValidationError('tip.version', 'must be a positive safe integer');
  const doc: TipDocument = { id: TIP_DOCUMENT_ID, a: aggregateId, tip, w: randomUUID() };
  const bytes = Buffer.byteLength(JSON.stringify(doc));
  if (bytes > MAX_DOCUMENT_BYTES) {
    throw new ValidationError('state', `makes a ${bytes}-byte tip document; Cosmos DB items are limited to 2 MB`);
  }
  return doc;
}

/** Checks a save-with-tip call and prepares its event documents: one batch, tip included, or a `ValidationError`. */
export function prepareTipSave(aggregateId: string, records: readonly EventRecord[], tipDoc: TipDocument, storeTtlSeconds: number): PreparedEvent[] {
  validateRecords(aggregateId, records);
  const prepared = prepareEvents(aggregateId, records, nowSeconds(), storeTtlSeconds);
  const tipBytes = Buffer.byteLength(JSON.stringify(tipDoc)) + 64;
  const chunks = chunkByLimits([...prepared, { operationBytes: tipBytes } as PreparedEvent]);
  if (chunks.length > 1 || records.length + 1 > MAX_BATCH_OPERATIONS) {
    throw new ValidationError(
      'records',
      `${records.length} records and the tip do not fit one transactional batch (at most ${MAX_BATCH_OPERATIONS} operations and 2 MB)`,
    );
  }
  return prepared;
}

/** `readTip` on the events container: one point read, `If-None-Match` when an etag is held. */
export async function readCosmosTip(
  events: Container,
  retries: Required<StoreRetryOptions>,
  aggregateId: string,
  options?: ReadTipOptions,
): Promise<StoredTip | 'not-modified' | undefined> {
  checkSignal(options);
  checkPartitionKey('aggregateId', aggregateId);
  const abortSignal = options?.abortSignal;
  const response = await retryTransient(`readTip ${JSON.stringify(aggregateId)}`, retries, abortSignal, () =>
    events.item(TIP_DOCUMENT_ID, aggregateId).read<TipDocument & { _etag: string }>({
      abortSignal,
      ...(options?.ifNoneMatch !== undefined && { accessCondition: { type: 'IfNoneMatch', condition: options.ifNoneMatch } }),
    }),
  );
  if (response.statusCode === 304) return 'not-modified';
  const { resource } = response;
  if (!resource || !isLiveTip(resource)) return undefined;
  return { etag: resource._etag, tip: resource.tip };
}

/**
 * `saveWithTip` on the events container: the events' creates and the tip's create (or replace under
 * `if-match`) in one transactional batch, retried on transient failures with the very same documents. After
 * an attempt whose outcome is unknown, a refusal on the resend is checked against the stored tip: carrying
 * this call's write id, it is ours (the acknowledgement was lost), else a `ConcurrencyError`.
 */
export async function saveCosmosTip(
  events: Container,
  retries: Required<StoreRetryOptions>,
  storeTtlSeconds: number,
  aggregateId: string,
  records: readonly EventRecord[],
  tip: TipBody,
  options?: SaveWithTipOptions,
): Promise<string | undefined> {
  checkSignal(options);
  const tipDoc = toTipDocument(aggregateId, tip);
  const prepared = prepareTipSave(aggregateId, records, tipDoc, storeTtlSeconds);
  expireWithEvents(tipDoc, prepared);
  const docs = prepared.map((p) => p.doc);
  const versions = docs.map((d) => d.v);
  const signal = options?.abortSignal;
  const ifMatch = options?.ifMatch;
  let outcomeUnknown = false;
  for (let attempt = 1; ; attempt++) {
    let response;
    try {
      const tipBody = tipDoc as unknown as JSONObject;
      const operations: OperationInput[] = [
        ...docs.map((doc): OperationInput => ({ operationType: 'Create', resourceBody: doc })),
        ifMatch === undefined
          ? { operationType: 'Create', resourceBody: tipBody }
          : { operationType: 'Replace', id: TIP_DOCUMENT_ID, resourceBody: tipBody, ifMatch },
      ];
      response = await events.items.batch(operations, aggregateId, { abortSignal: signal });
    } catch (err) {
      if (signal?.aborted) throw new WriteOutcomeUnknownError(aggregateId, versions, { cause: signal.reason });
      const failure = classifyBatchFailure(err);
      outcomeUnknown ||= failure.outcomeUnknown;
      if (failure.transient && attempt < retries.maxAttempts) {
        try {
          await pause(backoffMs(attempt, retries), signal);
        } catch (abort) {
          if (outcomeUnknown) throw new WriteOutcomeUnknownError(aggregateId, versions, { cause: abort });
          throw abort;
        }
        continue;
      }
      if (outcomeUnknown) throw new WriteOutcomeUnknownError(aggregateId, versions, { cause: err });
      throw new EventStoreError(`save of aggregate ${JSON.stringify(aggregateId)} with its tip failed: ${messageOf(err)}`, { cause: err });
    }
    outcomeUnknown ||= sdkRetriedUnknownOutcome(response.diagnostics);
    const results = response.result ?? [];
    const refused = results.findIndex((r) => r.statusCode === 409 || r.statusCode === 412 || r.statusCode === 404);
    if (refused >= 0) {
      if (outcomeUnknown) {
        let stored: StoredTip | 'not-modified' | undefined;
        let storedW: string | undefined;
        try {
          const read = await events.item(TIP_DOCUMENT_ID, aggregateId).read<TipDocument & { _etag: string }>({ abortSignal: signal });
          stored = read.resource && { etag: read.resource._etag, tip: read.resource.tip };
          storedW = read.resource?.w;
        } catch (err) {
          throw new WriteOutcomeUnknownError(aggregateId, versions, { cause: signal?.aborted ? signal.reason : err });
        }
        if (stored && storedW === tipDoc.w) return stored.etag; // our earlier attempt was applied
        // Another tip since: ours may have landed before it. Our events stored exactly as sent say so.
        let landed: boolean;
        try {
          landed = await eventsStoredAsSent(events, aggregateId, docs, signal);
        } catch (err) {
          throw new WriteOutcomeUnknownError(aggregateId, versions, { cause: signal?.aborted ? signal.reason : err });
        }
        if (landed) return undefined;
      }
      const conflicted = refused < docs.length ? [docs[refused].v] : versions;
      throw new ConcurrencyError(aggregateId, conflicted);
    }
    const failed = results.find((r) => r.statusCode >= 400 && r.statusCode !== 424) ?? results.find((r) => r.statusCode >= 400);
    if (failed || results.length !== docs.length + 1) {
      if (outcomeUnknown) throw new WriteOutcomeUnknownError(aggregateId, versions);
      throw new EventStoreError(
        `save of aggregate ${JSON.stringify(aggregateId)} with its tip failed with status ${failed?.statusCode ?? response.code}`,
      );
    }
    const etag = results[docs.length].eTag;
    if (typeof etag !== 'string') throw new EventStoreError(`save of aggregate ${JSON.stringify(aggregateId)}: the tip's answer holds no etag`);
    return etag;
  }
}

/** Whether every event document of a batch is stored exactly as sent (`d`, `t`): one point read each. */
async function eventsStoredAsSent(events: Container, aggregateId: string, docs: readonly EventDocument[], signal?: AbortSignal): Promise<boolean> {
  if (docs.length === 0) return false;
  for (const doc of docs) {
    const { resource } = await events.item(doc.id, aggregateId).read<EventDocument>({ abortSignal: signal });
    if (!resource || resource.d !== doc.d || resource.t !== doc.t) return false;
  }
  return true;
}
