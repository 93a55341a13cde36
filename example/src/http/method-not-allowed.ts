import type { IncomingMessage, ServerResponse } from 'node:http';

/** The express router's view of one registered route, as much of it as this needs. */
export interface RouteLayer {
  route?: { path?: unknown; methods: Record<string, boolean | undefined> };
  /** The route's parameters in `path`, or false; throws where a parameter is not valid percent-encoding. */
  match(path: string): false | { params: Record<string, unknown>; pattern?: unknown };
}

/** Whether the route's path matches; a path the router cannot decode (`%FF`) is left to its own 400. */
function matches(layer: RouteLayer, path: string): boolean {
  try {
    return layer.match(path) !== false;
  } catch {
    return false;
  }
}

/** The methods the application's routes answer for `path`, upper case, with HEAD wherever GET is. */
function allowedMethods(stack: readonly RouteLayer[], path: string): string[] {
  const methods = new Set<string>();
  for (const layer of stack) {
    if (!layer.route || !matches(layer, path)) continue;
    for (const [method, on] of Object.entries(layer.route.methods)) if (on && method !== '_all') methods.add(method.toUpperCase());
  }
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

/**
 * Express middleware answering a path the service has routes for, asked with another method: 405 with
 * `Allow` (RFC 9110) and the JSON error body, instead of Nest's 404 `Cannot PUT /orders`; `OPTIONS` is
 * answered 204 with `Allow`. `routes()` gives the router's layers, read per request: Nest registers its
 * routes when the application initialises, after this middleware is mounted.
 */
export function methodNotAllowed(routes: () => readonly RouteLayer[]) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    const method = req.method ?? 'GET';
    // The path as the router matches it: without the query, still percent-encoded.
    const path = (req.url ?? '/').split('?', 1)[0];
    const allowed = allowedMethods(routes(), path);
    if (allowed.length === 0 || allowed.includes(method)) return next();
    res.setHeader('Allow', allowed.join(', '));
    if (method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    const body = JSON.stringify({
      statusCode: 405,
      error: 'Method Not Allowed',
      message: `${method} is not allowed here; use ${allowed.join(', ')}`,
    });
    res.writeHead(405, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(body);
  };
}
