import { Inject } from '@nestjs/common';
import { AGGREGATE_STORE, OPAQUE_STORE, SNAPSHOT_TAIL_STORE, STORE } from './event-store.constants.js';

type InjectDecorator = ParameterDecorator & PropertyDecorator;

/** Injects the `Store`. */
export const InjectStore = (): InjectDecorator => Inject(STORE);
/** Injects the `SnapshotTailStore`. */
export const InjectSnapshotTailStore = (): InjectDecorator => Inject(SNAPSHOT_TAIL_STORE);
/** Injects the `AggregateStore`. */
export const InjectAggregateStore = (): InjectDecorator => Inject(AGGREGATE_STORE);
/** Injects the `OpaqueStore`. */
export const InjectOpaqueStore = (): InjectDecorator => Inject(OPAQUE_STORE);
