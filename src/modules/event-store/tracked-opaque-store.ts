import type { Materializable, OpaqueData, OpaqueStore, OperationOptions } from './event-store.interfaces.js';

/** What `putIfNewerTracked` did: whether it wrote, and the stored document's etag when it did and knows it. */
export interface TrackedPut {
  written: boolean;
  etag?: string;
  /**
   * `false` when the write replaced (or patched) a stored document, `true` when it created one; absent when
   * the store cannot tell. A repository checks after a write that may have created a view that its aggregate
   * was not erased meanwhile (an erasure deletes the views, and a late write would bring one back).
   */
  created?: boolean;
}

/** An `OpaqueStore` that can write `putIfNewer` in one request when the caller holds the stored etag. */
export interface TrackedOpaqueStore extends OpaqueStore {
  putIfNewerTracked(doc: OpaqueData, known: string | null | undefined, options?: OperationOptions): Promise<TrackedPut>;
}

/** True when the store has `putIfNewerTracked`. */
export function isTrackedOpaqueStore(store: unknown): store is TrackedOpaqueStore {
  return typeof (store as Partial<TrackedOpaqueStore> | null)?.putIfNewerTracked === 'function';
}

/** An `AggregateStore` that materializes through `putIfNewerTracked` (both event stores of this package). */
export interface TrackedAggregateStore {
  /**
   * `saveAggregate(aggregate, { onlyIfNewer: true })` in one request when `known` says what is stored: the
   * etag of the document as this caller last wrote it, or `null` when none exists yet (see
   * `TrackedOpaqueStore.putIfNewerTracked`); `undefined`: nothing known (`CosmosOpaqueStore` then sends one
   * patch conditional on the stored version being older, and reads only when it is refused).
   */
  saveAggregateTracked(aggregate: Materializable, known: string | null | undefined, options?: OperationOptions): Promise<TrackedPut>;
}

/** True when the store has `saveAggregateTracked`. */
export function isTrackedAggregateStore(store: unknown): store is TrackedAggregateStore {
  return typeof (store as Partial<TrackedAggregateStore> | null)?.saveAggregateTracked === 'function';
}
