import type { IncomingMessage } from 'node:http';
import type { ServerCollection, ServerDocument, ServerItems } from './cosmosdb-server-internals.js';
import {
  effectivePartitionKey,
  epkInRange,
  evenPartitionKeyRanges,
  MAX_EPK,
  MIN_EPK,
  type PartitionKeyRange,
} from './partition-key-ranges.js';

/** Cosmos DB's largest response page. */
const MAX_PAGE_BYTES = 4 * 1024 * 1024;

/** An answer for the request handler to send: status, headers and JSON body. */
export interface FeedAnswer {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/** The current version of one document, as the change feed hands it out. */
interface Entry {
  /** Log sequence number of the commit that wrote this version; shared by the items of one batch. */
  lsn: number;
  /** Commit time, epoch ms (start-from-time reads compare it). */
  at: number;
  key: string;
  partition: string;
  epk: string;
  doc: ServerDocument;
  /** Size of the document as JSON, for the page size limit. */
  bytes: number;
  /** A later write or a delete replaced this version: latest-version mode no longer shows it. */
  superseded: boolean;
}

/** The change log of one physical partition. */
interface RangeLog {
  range: PartitionKeyRange;
  /** Ids of the ranges this one split from, oldest first (Cosmos DB's `parents`). */
  parents: string[];
  /** LSN of the latest commit in this range (0: none yet). */
  lsn: number;
  /** Ascending by `lsn`. Superseded entries stay until compaction. */
  entries: Entry[];
  superseded: number;
}

/** A document touched by a write, identified as the server's index does. */
interface Touched {
  id: string;
  partition: unknown;
}

const keyOf = (id: string, partition: unknown) => `${partitionKeyString(partition)}\u0000${id}`;
/** Partition key values compare as the rest of the embedded server compares them (by JSON, `undefined` as null). */
const partitionKeyString = (partition: unknown) => JSON.stringify(partition ?? null);

/**
 * The change feed of one container in latest-version mode, as Cosmos DB keeps it: per partition key range,
 * every commit gets the next LSN; the feed lists each document's latest version at the LSN of its latest
 * write, so an update moves a document to the end and a delete takes it out. Every write to the container
 * is observed by wrapping the four write methods of the server's document store, so nothing that changes a
 * document escapes the log, whichever handler made the change.
 */
export class ContainerChangeFeed {
  /** Ascending by `minInclusive`, contiguous, covering the whole EPK space. */
  private logs: RangeLog[];
  /** The id the next child range gets: Cosmos DB never reuses a range id. */
  private nextRangeId: number;
  private readonly epkCache = new Map<string, string>();
  /** Documents written since the last commit, in write order. */
  private touched = new Map<string, Touched>();
  /** Nesting of write calls (`replace` calls `delete`), and of an open transaction. */
  private depth = 0;
  private inTransaction = false;
  /** The entry the feed currently shows for each document. */
  private readonly live = new Map<string, Entry>();

  constructor(
    private readonly collection: ServerCollection,
    rangeCount: number,
  ) {
    this.logs = evenPartitionKeyRanges(rangeCount).map((range) => ({ range, parents: [], lsn: 0, entries: [], superseded: 0 }));
    this.nextRangeId = rangeCount;
    this.instrument(collection.documents);
  }

  get ranges(): readonly PartitionKeyRange[] {
    return this.logs.map((log) => log.range);
  }

  /**
   * Runs `fn` as one transaction: its writes commit together (one LSN, one page of the feed) when it returns
   * `true`, and are forgotten when it returns `false`, the caller having put every document back as it was.
   */
  transaction(fn: () => boolean): void {
    this.inTransaction = true;
    let commit = false;
    try {
      commit = fn();
    } finally {
      this.inTransaction = false;
      if (commit) this.commit();
      else this.touched.clear();
    }
  }

  /** The answer to `GET .../pkranges`. */
  partitionKeyRanges(): FeedAnswer {
    const meta = this.collection.read() ?? {};
    const ranges = this.logs.map(({ range, parents }) => ({
      ...range,
      ridPrefix: Number(range.id),
      throughputFraction: 1 / this.logs.length,
      status: 'online',
      parents,
      _rid: `${meta._rid ?? ''}${range.id}`,
      _self: `${meta._self ?? ''}/pkranges/${range.id}`,
      _etag: `"pkrange-${range.id}"`,
      _ts: 0,
    }));
    return {
      status: 200,
      headers: { 'x-ms-item-count': String(ranges.length) },
      body: { _rid: meta._rid, PartitionKeyRanges: ranges, _count: ranges.length },
    };
  }

  /**
   * Splits one physical partition in two, as Cosmos DB does when a partition outgrows its storage or
   * throughput: the range (by id; by default the one holding the most documents) leaves the listing, and two
   * children with new ids take its two EPK halves, naming it in `parents`. Each child gets the parent's
   * entries of its half with their LSNs and continues the parent's LSN sequence, so a continuation (ETag) of
   * the parent is valid on both: that is what @azure/cosmos sends each child after a 410/1002 on the parent.
   * Requests still naming the parent are answered 410 with sub-status 1002 (partition key range gone).
   */
  split(rangeId?: string): { parent: PartitionKeyRange; children: [PartitionKeyRange, PartitionKeyRange] } {
    const index = rangeId === undefined ? this.busiestLog() : this.logs.findIndex((log) => log.range.id === rangeId);
    if (index < 0) {
      throw new Error(`no partition key range ${rangeId}: the ranges are ${this.logs.map((log) => log.range.id).join(', ')}`);
    }
    const parent = this.logs[index];
    const middle = middleEpk(parent.range);
    if (middle === undefined) throw new Error(`partition key range ${parent.range.id} is too narrow to split`);
    const children = [
      { minInclusive: parent.range.minInclusive, maxExclusive: middle },
      { minInclusive: middle, maxExclusive: parent.range.maxExclusive },
    ].map((bounds): RangeLog => {
      const entries = parent.entries.filter((entry) => epkInRange(entry.epk, bounds.minInclusive, bounds.maxExclusive));
      return {
        range: { id: String(this.nextRangeId++), ...bounds },
        parents: [...parent.parents, parent.range.id],
        lsn: parent.lsn,
        entries,
        superseded: entries.filter((entry) => entry.superseded).length,
      };
    });
    this.logs = [...this.logs.slice(0, index), ...children, ...this.logs.slice(index + 1)];
    return { parent: parent.range, children: [children[0].range, children[1].range] };
  }

  /**
   * Merges two adjacent physical partitions into one, as Cosmos DB does when throughput or storage shrink:
   * both leave the listing and one range with a new id takes their joint EPK span, naming both in `parents`.
   * The merged log holds both parents' entries with their LSNs, in LSN order (each parent's own order kept),
   * and continues from the higher of their LSNs, so a continuation of either parent stays valid on it for
   * that parent's EPK span (which @azure/cosmos sends after a 410/1002 on the parent, with EPK headers).
   * Requests still naming a parent are answered 410 with sub-status 1002. By default the first two ranges.
   */
  merge(leftId?: string): { parents: [PartitionKeyRange, PartitionKeyRange]; merged: PartitionKeyRange } {
    const index = leftId === undefined ? 0 : this.logs.findIndex((log) => log.range.id === leftId);
    if (index < 0 || index + 1 >= this.logs.length) {
      throw new Error(`no partition key range ${String(leftId)} with a right neighbour: the ranges are ${this.logs.map((log) => log.range.id).join(', ')}`);
    }
    const left = this.logs[index];
    const right = this.logs[index + 1];
    const entries = [...left.entries, ...right.entries].sort((x, y) => x.lsn - y.lsn);
    const merged: RangeLog = {
      range: { id: String(this.nextRangeId++), minInclusive: left.range.minInclusive, maxExclusive: right.range.maxExclusive },
      parents: [...left.parents, left.range.id, right.range.id],
      lsn: Math.max(left.lsn, right.lsn),
      entries,
      superseded: left.superseded + right.superseded,
    };
    this.logs = [...this.logs.slice(0, index), merged, ...this.logs.slice(index + 2)];
    return { parents: [left.range, right.range], merged: merged.range };
  }

  /** Index of the log with the most current documents (the first of those). */
  private busiestLog(): number {
    let best = 0;
    this.logs.forEach((log, i) => {
      const live = (l: RangeLog) => l.entries.length - l.superseded;
      if (live(log) > live(this.logs[best])) best = i;
    });
    return best;
  }

  /**
   * The answer to a change feed request (`GET .../docs` with `A-IM: Incremental Feed`), read from the headers
   * @azure/cosmos sends: the range (`x-ms-documentdb-partitionkeyrangeid`, narrowed by `x-ms-start-epk` /
   * `x-ms-end-epk`) or one partition key (`x-ms-documentdb-partitionkey`); where to start (`If-None-Match`:
   * an LSN from an earlier answer's ETag, or `*` for now; else `If-Modified-Since`, else the beginning); and
   * `x-ms-max-item-count`.
   */
  read(req: IncomingMessage): FeedAnswer {
    const meta = this.collection.read() ?? {};
    if (header(req, 'a-im')?.toLowerCase() !== 'incremental feed') {
      return badRequest(`only the latest-version change feed (A-IM: Incremental Feed) is emulated, got ${header(req, 'a-im')}`);
    }
    let log: RangeLog | undefined;
    let partition: string | undefined;
    let epkMin = MIN_EPK;
    let epkMax = MAX_EPK;
    const partitionHeader = header(req, 'x-ms-documentdb-partitionkey');
    const rangeId = header(req, 'x-ms-documentdb-partitionkeyrangeid');
    if (partitionHeader !== undefined) {
      const value = parsePartitionKeyHeader(partitionHeader);
      if (value === INVALID) return badRequest('x-ms-documentdb-partitionkey is not a JSON array of one value');
      partition = partitionKeyString(value);
      log = this.logOf(partition, value);
    } else if (rangeId !== undefined) {
      log = this.logs.find((l) => l.range.id === rangeId.split(',')[0]);
      if (!log) {
        // What Cosmos DB answers for a range that split or never existed: the SDK refreshes its ranges.
        return { status: 410, headers: { 'x-ms-substatus': '1002' }, body: { code: 'Gone', message: `partition key range ${rangeId} is gone` } };
      }
      epkMin = header(req, 'x-ms-start-epk') ?? MIN_EPK;
      epkMax = header(req, 'x-ms-end-epk') ?? MAX_EPK;
    } else if (this.logs.length === 1) {
      log = this.logs[0];
    } else {
      return badRequest('a change feed request on a container of several partition key ranges names a range or a partition key');
    }

    const ifNoneMatch = header(req, 'if-none-match');
    let after = 0;
    let since: number | undefined;
    if (ifNoneMatch === '*') {
      // Start from now: nothing yet, and the ETag to continue from.
      return this.notModified(meta._rid, log, log.lsn);
    } else if (ifNoneMatch !== undefined) {
      const lsn = Number(ifNoneMatch.replaceAll('"', ''));
      if (!Number.isSafeInteger(lsn) || lsn < 0) return badRequest(`If-None-Match ${ifNoneMatch} is not a change feed continuation`);
      after = lsn;
    } else {
      const ifModifiedSince = header(req, 'if-modified-since');
      if (ifModifiedSince !== undefined) {
        since = Date.parse(ifModifiedSince);
        if (Number.isNaN(since)) return badRequest(`If-Modified-Since ${ifModifiedSince} is not an HTTP date`);
      }
    }
    const maxHeader = Number(header(req, 'x-ms-max-item-count') ?? -1);
    const maxItems = Number.isSafeInteger(maxHeader) && maxHeader > 0 ? maxHeader : Number.POSITIVE_INFINITY;

    const page: Entry[] = [];
    let bytes = 0;
    let continuation = log.lsn;
    for (let i = firstAfter(log.entries, after); i < log.entries.length; i++) {
      const entry = log.entries[i];
      const last = page.at(-1);
      // A page ends only between commits: the items of one transactional batch are never split.
      const full = page.length >= maxItems || bytes + entry.bytes > MAX_PAGE_BYTES;
      if (last && full && entry.lsn !== last.lsn) {
        continuation = last.lsn;
        break;
      }
      if (entry.superseded) continue;
      if (partition !== undefined && entry.partition !== partition) continue;
      if (partition === undefined && !epkInRange(entry.epk, epkMin, epkMax)) continue;
      if (since !== undefined && entry.at < since) continue;
      page.push(entry);
      bytes += entry.bytes;
    }
    // A continuation ahead of the log (from an older incarnation of the container) is kept, not rewound.
    if (page.length === 0) return this.notModified(meta._rid, log, Math.max(after, log.lsn));
    const documents = page.map((entry) => ({ ...entry.doc, _lsn: entry.lsn }));
    return {
      status: 200,
      headers: { ...this.progressHeaders(log, continuation), 'x-ms-item-count': String(documents.length) },
      body: { _rid: meta._rid, Documents: documents, _count: documents.length },
    };
  }

  private notModified(rid: string | undefined, log: RangeLog, continuation: number): FeedAnswer {
    return { status: 304, headers: { ...this.progressHeaders(log, continuation), 'x-ms-item-count': '0' }, body: { _rid: rid } };
  }

  /**
   * The ETag is the continuation (the LSN up to which this answer covers the range). The session token and
   * `lsn` tell the range's latest LSN, which is how Cosmos DB's change feed estimators measure lag.
   */
  private progressHeaders(log: RangeLog, continuation: number): Record<string, string> {
    return {
      etag: `"${continuation}"`,
      lsn: String(log.lsn),
      'x-ms-session-token': `${log.range.id}:-1#${log.lsn}`,
    };
  }

  private instrument(documents: ServerItems): void {
    const create = documents.create.bind(documents);
    const replace = documents.replace.bind(documents);
    const upsert = documents.upsert.bind(documents);
    const remove = documents.delete.bind(documents);
    documents.create = (doc) => this.write(() => create(doc), (written) => this.touchDoc(written));
    documents.replace = (doc, original) => this.write(() => replace(doc, original), (written) => this.touchDoc(written));
    documents.upsert = (doc) => this.write(() => upsert(doc), (written) => this.touchDoc(written));
    documents.delete = (id, partition) => this.write(() => remove(id, partition), () => this.touch({ id, partition }));
  }

  /** Runs one write of the store and commits it, unless it is part of a larger one. */
  private write<T>(fn: () => T, touch: (result: T) => void): T {
    this.depth++;
    try {
      const result = fn();
      touch(result);
      return result;
    } finally {
      this.depth--;
      if (this.depth === 0 && !this.inTransaction) this.commit();
    }
  }

  private touchDoc(doc: ServerDocument): void {
    this.touch({ id: doc.id, partition: this.collection.documents._getPartition(doc) });
  }

  private touch(doc: Touched): void {
    const key = keyOf(doc.id, doc.partition);
    // Re-inserted so the map keeps the order of the last write.
    this.touched.delete(key);
    this.touched.set(key, doc);
  }

  /**
   * Records every touched document at its state now: the current version gets the next LSN of its range
   * (one LSN for all of a transaction), a deleted one leaves the feed.
   */
  private commit(): void {
    const touched = [...this.touched.values()];
    this.touched = new Map();
    if (touched.length === 0) return;
    const at = Date.now();
    const lsnOf = new Map<RangeLog, number>();
    // Cosmos DB promises no order among the items of one transaction: hand them out last-written first, so a
    // consumer that relies on write order fails here rather than in production.
    for (const { id, partition } of touched.reverse()) {
      const key = keyOf(id, partition);
      const partitionString = partitionKeyString(partition);
      const log = this.logOf(partitionString, partition);
      const previous = this.live.get(key);
      if (previous) {
        previous.superseded = true;
        log.superseded++;
        this.live.delete(key);
      }
      const doc = this.collection.document(id, partition).read();
      if (!doc) continue;
      let lsn = lsnOf.get(log);
      if (lsn === undefined) {
        lsn = ++log.lsn;
        lsnOf.set(log, lsn);
      }
      const json = JSON.stringify(doc);
      const entry: Entry = {
        lsn,
        at,
        key,
        partition: partitionString,
        epk: this.epkOf(partitionString, partition),
        // A copy as of this commit: the store's object is the server's, not the log's.
        doc: JSON.parse(json) as ServerDocument,
        bytes: Buffer.byteLength(json),
        superseded: false,
      };
      log.entries.push(entry);
      this.live.set(key, entry);
    }
    for (const log of lsnOf.keys()) this.compact(log);
  }

  /** Drops superseded entries once they are most of the log, keeping reads proportional to live documents. */
  private compact(log: RangeLog): void {
    if (log.superseded < 1024 || log.superseded * 2 < log.entries.length) return;
    log.entries = log.entries.filter((entry) => !entry.superseded);
    log.superseded = 0;
  }

  private logOf(partition: string, value: unknown): RangeLog {
    if (this.logs.length === 1) return this.logs[0];
    const epk = this.epkOf(partition, value);
    return this.logs.find((log) => epkInRange(epk, log.range.minInclusive, log.range.maxExclusive)) ?? this.logs[0];
  }

  private epkOf(partition: string, value: unknown): string {
    let epk = this.epkCache.get(partition);
    if (epk === undefined) {
      epk = effectivePartitionKey(value, this.collection.read()?.partitionKey);
      this.epkCache.set(partition, epk);
    }
    return epk;
  }
}

/**
 * The change feeds of every container of an embedded account, created the first time a request names the
 * container (always before its first write), and forgotten with the container.
 */
export class ChangeFeeds {
  private readonly feeds = new WeakMap<ServerItems, ContainerChangeFeed>();

  constructor(private readonly rangesPerContainer: number) {}

  /** The feed of an existing container, instrumenting its store on first use. */
  of(collection: ServerCollection): ContainerChangeFeed | undefined {
    if (!collection.read()) return undefined;
    let feed = this.feeds.get(collection.documents);
    if (!feed) {
      feed = new ContainerChangeFeed(collection, this.rangesPerContainer);
      this.feeds.set(collection.documents, feed);
    }
    return feed;
  }
}

/**
 * The EPK halfway through `range`, as 32 hex digits (the form of a version-2 hash), or undefined when the
 * range holds a single EPK. `""` stands for 0 and `"FF"` for 2^126, the end of the version-2 hash space, as in
 * `evenPartitionKeyRanges`.
 */
function middleEpk({ minInclusive, maxExclusive }: PartitionKeyRange): string | undefined {
  const value = (epk: string, end: bigint) => (epk === MIN_EPK ? 0n : epk === MAX_EPK ? end : BigInt(`0x${epk}`));
  const low = value(minInclusive, 0n);
  const high = value(maxExclusive, 1n << 126n);
  if (high - low < 2n) return undefined;
  return ((low + high) / 2n).toString(16).toUpperCase().padStart(32, '0');
}

/** Index of the first entry with an LSN above `lsn`. */
function firstAfter(entries: Entry[], lsn: number): number {
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (entries[mid].lsn <= lsn) low = mid + 1;
    else high = mid;
  }
  return low;
}

const INVALID = Symbol('invalid');

function parsePartitionKeyHeader(value: string): unknown {
  try {
    const parsed: unknown = JSON.parse(value);
    const single = Array.isArray(parsed) ? parsed[0] : parsed;
    // The SDK sends `[{}]` for "no partition key value".
    return single !== null && typeof single === 'object' ? undefined : single;
  } catch {
    return INVALID;
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function badRequest(message: string): FeedAnswer {
  return { status: 400, headers: {}, body: { code: 'BadRequest', message } };
}
