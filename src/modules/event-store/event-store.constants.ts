/** A `Store` (append and load streams). */
export const STORE = Symbol('STORE');
/** A `SnapshotTailStore` (a `Store` that also reads the newest n records). */
export const SNAPSHOT_TAIL_STORE = Symbol('SNAPSHOT_TAIL_STORE');
/** An `AggregateStore` (materializes aggregates). */
export const AGGREGATE_STORE = Symbol('AGGREGATE_STORE');
/** The `OpaqueStore` over the aggregates container (get, delete and query materialized documents). */
export const OPAQUE_STORE = Symbol('OPAQUE_STORE');
/** @internal `EventStoreModuleOptions`. */
export const EVENT_STORE_OPTIONS = Symbol('EVENT_STORE_OPTIONS');
