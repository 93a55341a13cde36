/** Cosmos DB limits the store designs around (COSMOS-FACTS.md). */

/** Operations in one transactional batch. */
export const MAX_BATCH_OPERATIONS = 100;

/** A request body, which bounds a transactional batch. */
export const MAX_REQUEST_BYTES = 2 * 1024 * 1024;

/** An item as stored, system properties (`_rid`, `_self`, `_etag`, `_ts`, `_attachments`) included. */
export const MAX_ITEM_BYTES = 2 * 1024 * 1024;

/**
 * What our own fields may take of an item: Cosmos adds about 150 bytes of system properties, so keep a
 * kilobyte free rather than be refused by the service after the request was sent.
 */
export const MAX_DOCUMENT_BYTES = MAX_ITEM_BYTES - 1024;

/** A partition key value with partition-key definition version 2. */
export const MAX_PARTITION_KEY_BYTES = 2048;

/** An item's `ttl` in seconds: Cosmos DB refuses more (about 68 years) with 400. */
export const MAX_ITEM_TTL_SECONDS = 2_147_483_647;

/** A document id. */
export const MAX_ID_BYTES = 1023;

/** Secondary-index slots of the aggregates container. */
export const NUM_GSI = 20;
