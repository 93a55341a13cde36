import type { Container, JSONObject, OperationInput, SqlParameter } from '@azure/cosmos';
import type { OpaqueData } from './event-store.interfaces.js';
import { NotFoundError } from './event-store.errors.js';
import {
  candidateDocumentIds,
  documentIdForSortKey,
  fromAggregateDocument,
  idNeedsBody,
  isExpired,
  toAggregateDocument,
  type AggregateDocument,
} from './aggregate-documents.js';
import { nowSeconds } from './event-documents.js';
import { classifyBatchFailure } from './transient-faults.js';

type Stored = AggregateDocument & { _etag: string };

// Each lost race means another writer changed the document in between; the loop ends quickly unless this
// many writers race on one document.
const MAX_ATTEMPTS = 20;

/**
 * Documents of the aggregates container reached by the ids in request bodies rather than item URLs: the
 * ones whose id holds `#` or `?` (Go's `PROJ#<Name>`, which the SDK refuses in URLs), and the sort keys
 * whose document may sit under another id (one written by an earlier version of this package, or by Go
 * under the raw sort key). Reads are single-partition queries over every candidate id; writes and deletes
 * are transactional batches that also delete the document under any other candidate id, etag-checked, so a
 * sort key never ends with two documents in one partition.
 */
export class BodyAddressedDocuments {
  constructor(private readonly container: Container) {}

  /** True when `sk` needs this path; every other sort key has one id that travels in a URL. */
  static handles(sk: string): boolean {
    return candidateDocumentIds(sk).length > 1 || idNeedsBody(documentIdForSortKey(sk));
  }

  async get(pk: string, sk: string, abortSignal?: AbortSignal): Promise<OpaqueData> {
    const live = pickLive(await this.find(pk, sk, abortSignal), sk, nowSeconds());
    if (!live) throw new NotFoundError(`no aggregate at (pk ${JSON.stringify(pk)}, sk ${JSON.stringify(sk)})`);
    return fromAggregateDocument(live);
  }

  async delete(pk: string, sk: string, abortSignal?: AbortSignal): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const found = await this.find(pk, sk, abortSignal);
      if (found.length === 0) return;
      const operations: OperationInput[] = found.map(deleteIfUnchanged);
      if (await this.commit(operations, pk, attempt, abortSignal)) return;
    }
  }

  async put(doc: OpaqueData, body: AggregateDocument, abortSignal?: AbortSignal): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const others = (await this.find(doc.pk, doc.sk, abortSignal)).filter((d) => d.id !== body.id);
      const operations: OperationInput[] = [
        { operationType: 'Upsert', resourceBody: json(body) },
        ...others.map(deleteIfUnchanged),
      ];
      if (await this.commit(operations, doc.pk, attempt, abortSignal)) return;
    }
  }

  /**
   * As `OpaqueStore.putIfNewer`: writes only over a lower (or absent) live version. `failedWrites` outlives
   * one call, across the caller's retries: a batch whose answer was lost may have landed, and finding
   * exactly one of those stored counts as our write.
   */
  async putIfNewer(doc: OpaqueData, abortSignal?: AbortSignal, failedWrites: AggregateDocument[] = []): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const now = nowSeconds();
      const found = await this.find(doc.pk, doc.sk, abortSignal);
      const live = pickLive(found, doc.sk, now);
      if (live && (live.version ?? 0) >= (doc.version ?? 0)) return failedWrites.some((sent) => sameFields(live, sent));
      const body = toAggregateDocument(doc, now);
      const mine = found.find((d) => d.id === body.id);
      const operations: OperationInput[] = [
        mine
          ? { operationType: 'Replace', id: body.id, resourceBody: json(body), ifMatch: mine._etag }
          : { operationType: 'Create', resourceBody: json(body) },
        ...found.filter((d) => d !== mine).map(deleteIfUnchanged),
      ];
      let committed: boolean;
      try {
        committed = await this.commit(operations, doc.pk, attempt, abortSignal);
      } catch (err) {
        failedWrites.push(body);
        throw err;
      }
      if (committed) return true;
    }
  }

  /** Every stored document of this (pk, sk), expired or not, under any of its candidate ids. */
  private async find(pk: string, sk: string, abortSignal?: AbortSignal): Promise<Stored[]> {
    const ids = candidateDocumentIds(sk);
    const parameters: SqlParameter[] = [{ name: '@sk', value: sk }, ...ids.map((value, i) => ({ name: `@id${i}`, value }))];
    const match = ids.map((_, i) => `c.id = @id${i}`).join(' OR ');
    const { resources } = await this.container.items
      .query<Stored>({ query: `SELECT * FROM c WHERE c.pk = @pk AND c.sk = @sk AND (${match})`, parameters: [...parameters, { name: '@pk', value: pk }] }, { partitionKey: pk, abortSignal })
      .fetchAll();
    return resources;
  }

  /**
   * Runs one batch; false when it lost a race (a candidate created, changed or deleted meanwhile: 404, 409,
   * 412) and should be planned again from a fresh read.
   */
  private async commit(operations: OperationInput[], pk: string, attempt: number, abortSignal?: AbortSignal): Promise<boolean> {
    let response;
    try {
      response = await this.container.items.batch(operations, pk, { abortSignal });
    } catch (err) {
      // The SDK's batch error keeps only a message; give the caller's retry the status (or a network code)
      // it classifies by. Repeating is safe: every attempt plans again from a fresh read.
      const failure = classifyBatchFailure(err);
      if (!failure.transient || abortSignal?.aborted) throw err;
      throw Object.assign(new Error(`batch on partition ${JSON.stringify(pk)} failed: ${(err as Error).message}`), {
        code: failure.status ?? 'ECONNRESET',
        cause: err,
      });
    }
    // Cosmos DB answers a failed batch with 207 and per-operation statuses; the SDK resolves all the same.
    const failed = (response.result ?? []).find((r) => r.statusCode >= 400 && r.statusCode !== 424);
    if (!failed) return true;
    if ([404, 409, 412].includes(failed.statusCode) && attempt < MAX_ATTEMPTS) return false;
    throw Object.assign(new Error(`batch on partition ${JSON.stringify(pk)} failed with status ${failed.statusCode}`), {
      code: failed.statusCode,
    });
  }
}

/** The live document of a sort key: ours first, then any other candidate, never an expired one. */
function pickLive(found: Stored[], sk: string, now: number): Stored | undefined {
  const live = found.filter((doc) => !isExpired(doc.t, now));
  const ours = documentIdForSortKey(sk);
  return live.find((doc) => doc.id === ours) ?? live[0];
}

/** A batch Delete that fails with 412 when the document changed since it was read. */
function deleteIfUnchanged(doc: Stored): OperationInput {
  // The batch wire format takes ifMatch on every operation type; the SDK's typings omit it for Delete.
  return { operationType: 'Delete', id: doc.id, ifMatch: doc._etag } as OperationInput;
}

function json(doc: AggregateDocument): JSONObject {
  return { ...doc } as unknown as JSONObject;
}

/** Whether a stored document holds exactly the fields of one we sent (the service adds only `_` fields). */
function sameFields(stored: AggregateDocument, sent: AggregateDocument): boolean {
  const fields = (doc: AggregateDocument) =>
    JSON.stringify(Object.entries(doc).filter(([name]) => !name.startsWith('_')).sort(([a], [b]) => (a < b ? -1 : 1)));
  return fields(stored) === fields(sent);
}
