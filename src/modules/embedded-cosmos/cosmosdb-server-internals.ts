import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';

/*
 * @vercel/cosmosdb-server exports only its servers; its compiled modules are imported directly to route
 * requests through our own handlers first. They are not a public API, hence the exact version pin in
 * package.json and the narrow types below, which describe only what we use.
 */
const require = createRequire(import.meta.url);
const lib = '@vercel/cosmosdb-server/lib';

export interface ServerDocument {
  id: string;
  _etag: string;
  [field: string]: unknown;
}

export interface ServerItems {
  _data: Map<string, { read(): ServerDocument }>;
  _getPartition(doc: unknown): unknown;
  _getQuery(sql: string): { exec(data: ServerDocument[], options: object): unknown };
  _userDefinedFunctions(): unknown;
  _set(doc: ServerDocument): ServerDocument;
  /** Every write of a document goes through these four (`upsert` and `replace` through the others too). */
  create(doc: ServerDocument): ServerDocument;
  replace(doc: ServerDocument, original: ServerDocument): ServerDocument;
  upsert(doc: ServerDocument): ServerDocument;
  delete(id: string, partition: unknown): void;
}

export interface ServerCollectionDefinition {
  _rid?: string;
  _self?: string;
  partitionKey?: { paths?: string[]; kind?: string; version?: number };
  indexingPolicy?: { compositeIndexes?: unknown };
}

export interface ServerCollection {
  read(): ServerCollectionDefinition | undefined;
  documents: ServerItems;
  document(id: string, partition: unknown): { read(): ServerDocument | undefined };
}

export interface ServerAccount {
  read(): Record<string, unknown>;
  database(id: string): { collection(id: string): ServerCollection };
}

export type RouteHandler = (
  account: ServerAccount,
  req: IncomingMessage,
  res: ServerResponse,
  params: Record<string, string>,
) => Promise<unknown>;

export interface OperationResult {
  statusCode: number;
  body?: ServerDocument | Record<string, unknown>;
}

export interface BatchOperation {
  operationType?: string;
  id?: string;
  partitionKey?: string;
  ifMatch?: string;
  resourceBody?: ServerDocument;
}

type Operation = (collection: ServerCollection, input: BatchOperation) => OperationResult;

export const Account = (require(`${lib}/account/index.js`) as { default: new (host: string, port: number) => ServerAccount })
  .default;
export const route = (require(`${lib}/routes.js`) as {
  default: (req: IncomingMessage) => [Record<string, string>, RouteHandler] | undefined;
}).default;
export const createDocument = (require(`${lib}/handler/create-document.js`) as { default: RouteHandler }).default;
export const upsertDocument = (require(`${lib}/handler/upsert-document.js`) as { default: RouteHandler }).default;
export const replaceDocument = (require(`${lib}/handler/replace-document.js`) as { default: RouteHandler }).default;
export const batchDocuments = (require(`${lib}/handler/batch-documents.js`) as { default: RouteHandler }).default;
export const queryDocuments = (require(`${lib}/handler/query-documents.js`) as { default: RouteHandler }).default;
export const readDocuments = (require(`${lib}/handler/read-documents.js`) as { default: RouteHandler }).default;
export const readPartitionKeyRanges = (require(`${lib}/handler/read-partition-key-ranges.js`) as { default: RouteHandler })
  .default;
export const readMeta = (require(`${lib}/handler/read-meta.js`) as { default: RouteHandler }).default;
export const patchDocument = (require(`${lib}/handler/patch-document.js`) as { default: RouteHandler }).default;
/** The patch of one item by id and partition key, as the route runs it; `condition` is left out by us (see embedded-cosmos.ts). */
export const patchOperation = (require(`${lib}/handler/_patch-operations.js`) as {
  patchOperation: (
    collection: ServerCollection,
    input: { id: string; partitionKey: string | undefined; ifMatch?: string; operations: unknown[] },
  ) => OperationResult;
}).patchOperation;
/** The partition key value of an item request's header, as the library's handlers read it (the id when none). */
export const parsePartitionKey = (require(`${lib}/utils/get-partition-from-header.js`) as {
  parsePartitionKey: (header: string | undefined, id: string) => unknown;
}).parsePartitionKey;
export const readItems = (require(`${lib}/handler/_read-items.js`) as {
  default: (
    req: IncomingMessage,
    res: ServerResponse,
    itemsName: string,
    fn: (page: { continuation: unknown; maxItemCount: number | null }) => Promise<unknown>,
  ) => Promise<unknown>;
}).default;
export const documentOperations = require(`${lib}/handler/_document-operations.js`) as Record<
  'createOperation' | 'upsertOperation' | 'readOperation' | 'deleteOperation' | 'replaceOperation',
  Operation
>;
