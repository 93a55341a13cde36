import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RouteLayer } from './method-not-allowed.js';

/** Stands for a path segment that is not valid percent-encoded UTF-8 while the routes are matched. */
const MARKER = '~undecodable~';

/** A route parameter whose value in the request's path is not valid percent-encoded UTF-8. */
export interface UndecodableParam {
  /** The parameter's name in the route (`id` of `/orders/:id`), as the OpenAPI document names it. */
  name: string;
  /** The route's path pattern (`/orders/:id`). */
  route: string;
  /** The segment as sent (`%FF`). */
  raw: string;
}

function decodes(segment: string): boolean {
  try {
    decodeURIComponent(segment);
    return true;
  } catch {
    return false;
  }
}

/**
 * The route parameter `path` cannot be decoded into (`/orders/%FF`), for a request the router would refuse
 * with a bare "Failed to decode param" 400 that names no parameter; undefined when every segment decodes
 * or no route has a parameter there. Routes for `method` first, so the name is the one the request's route uses.
 */
export function undecodableParam(stack: readonly RouteLayer[], method: string, path: string): UndecodableParam | undefined {
  const segments = path.split('/');
  const bad = segments.findIndex((segment) => !decodes(segment));
  if (bad < 0) return undefined;
  const marked = segments.map((segment, i) => (i === bad ? MARKER : segment)).join('/');
  const routes = stack.filter((layer) => layer.route);
  const own = routes.filter((layer) => layer.route!.methods[method.toLowerCase()] || layer.route!.methods._all);
  for (const layer of [...own, ...routes]) {
    let match: ReturnType<RouteLayer['match']>;
    try {
      match = layer.match(marked);
    } catch {
      continue; // another segment of the path does not decode either: answered for the first one
    }
    if (!match) continue;
    const name = Object.entries(match.params).find(([, value]) => String(value).includes(MARKER))?.[0];
    if (name !== undefined) return { name, route: String(layer.route!.path ?? match.pattern ?? ''), raw: segments[bad] };
  }
  return undefined;
}

/**
 * Express middleware answering a path parameter that is not valid percent-encoded UTF-8 (`GET /orders/%FF`)
 * as every other bad input: 400 with the JSON error body naming the parameter as `field`. `own(req, res,
 * param)` answers it instead for routes with an error shape of their own (protosource's) and says whether it did.
 */
export function nameUndecodableParams(
  routes: () => readonly RouteLayer[],
  own: (req: IncomingMessage, res: ServerResponse, param: UndecodableParam) => boolean = () => false,
) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (!path.includes('%')) return next();
    const param = undecodableParam(routes(), req.method ?? 'GET', path);
    if (param === undefined || own(req, res, param)) return param === undefined ? next() : undefined;
    const body = JSON.stringify({
      statusCode: 400,
      error: 'Bad Request',
      message: `${param.name}: ${JSON.stringify(param.raw.slice(0, 100))} is not valid percent-encoded UTF-8; percent-encode each UTF-8 byte of the value`,
      field: param.name,
    });
    res.writeHead(400, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(body);
  };
}
