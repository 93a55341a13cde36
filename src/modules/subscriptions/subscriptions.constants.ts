/** The `Subscriptions` control of this application (lag, rebuild, dead letters, start/stop). */
export const SUBSCRIPTIONS = Symbol('SUBSCRIPTIONS');
/** The @azure/cosmos `Container` of leases, checkpoints and dead letters (partition key `/group`). */
export const LEASES_CONTAINER = Symbol('LEASES_CONTAINER');

export const DEFAULT_LEASES_CONTAINER = 'leases';
/** Partition key path of the leases container: every document of one consumer group shares a partition. */
export const LEASES_PARTITION_KEY_PATH = '/group';
/** Where `forFeature` registers subscribers: bound by `forRoot` and by `inMemory`. Internal. */
export const SUBSCRIBER_REGISTRY = Symbol('SUBSCRIBER_REGISTRY');
