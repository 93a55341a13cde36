import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Answers a refusal in a route's own error shape (protosource's `apierror`) and says whether it did; false
 * leaves it to the service's JSON error body.
 */
export type OwnErrorShape = (req: IncomingMessage, res: ServerResponse, status: number, message: string) => boolean;

/** `application/json`, with or without parameters (`; charset=utf-8`), in any letter case. */
const JSON_TYPE = /^application\/json\s*(;|$)/i;
/** What protosource's clients send binary messages as. */
const PROTOBUF_TYPE = /^application\/(x-)?protobuf\s*(;|$)/i;

/**
 * Express middleware refusing a request body that is not JSON with 415 and the JSON error body, before any
 * parser reads it. Every route of the service takes JSON only; without this, Nest's default urlencoded
 * parser would turn an HTML form's post into a body (`customerId=c-1` placed an order), which any web page
 * can make a browser send cross-site without a CORS preflight. Under `protobufPrefixes` (protosource's
 * routes) binary protobuf is taken too: a content type no form can send without a preflight; `own` answers
 * there in the routes' own error shape.
 */
export function jsonBodiesOnly(protobufPrefixes: readonly string[] = [], own: OwnErrorShape = () => false) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    const type = req.headers['content-type'];
    if (!hasBody || (type !== undefined && JSON_TYPE.test(type))) return next();
    if (type !== undefined && PROTOBUF_TYPE.test(type) && protobufPrefixes.some((prefix) => req.url?.startsWith(prefix))) return next();
    const given = type === undefined ? '' : `, not ${JSON.stringify(type.slice(0, 100))}`;
    // The body is not read: the connection cannot be reused for a next request.
    res.setHeader('Connection', 'close');
    const protobuf = protobufPrefixes.some((prefix) => req.url?.startsWith(prefix));
    const message = `the body must be JSON sent with content-type application/json${protobuf ? ' (or protobuf, application/protobuf)' : ''}${given}`;
    if (own(req, res, 415, message)) return;
    const body = JSON.stringify({ statusCode: 415, error: 'Unsupported Media Type', message });
    res.writeHead(415, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(body);
  };
}
