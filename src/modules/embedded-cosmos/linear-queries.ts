import { createRequire } from 'node:module';

/*
 * @zeit/cosmosdb-query (the SQL engine of @vercel/cosmosdb-server, pinned with it) builds every result with
 * `reduce((acc, x) => [...acc, x], [])`: copying the array at each element, so a query costs the square of
 * the documents it scans. 20,000 events took 7 s to load, 100,000 would take minutes. Two rewrites make it
 * linear without changing any result:
 * - `helpers.stripUndefined`, run on every result, is replaced by a linear function of the same meaning;
 * - the generated code's FROM clause over one source (`$c.reduce(($, c) => typeof c !== "undefined" ?
 *   [...$, { c: c }] : $, [])`) becomes the equivalent `filter` + `map`. Other shapes (JOINs) are left alone.
 * Both are module-level patches of exactly pinned internals, applied once.
 */
const require = createRequire(import.meta.url);

interface QueryInstance {
  _code: string | null;
}

let applied = false;

/** Removes `undefined` from arrays and `undefined`-valued properties from objects, recursively. */
export function stripUndefined(value: unknown): unknown {
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const element of value) if (element !== undefined) out.push(stripUndefined(element));
    return out;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) {
      if (field === undefined) continue;
      // A field named `__proto__` is defined, not assigned (which would set the prototype): it stays a field,
      // as JSON.parse made it. Assigning the rest is three times faster on large results.
      if (key === '__proto__') {
        Object.defineProperty(out, key, { value: stripUndefined(field), enumerable: true, writable: true, configurable: true });
      } else {
        out[key] = stripUndefined(field);
      }
    }
    return out;
  }
  return value;
}

// The FROM clause of a single-source query, as the engine's code generator writes it.
const QUADRATIC_FROM =
  /\$c\.reduce\(\(\$, (\w+)\) => typeof \1 !== "undefined" \? \[\.\.\.\$, \{\s*\1: \1\s*\}\] : \$, \[\]\)/g;

/** The engine's generated code with a linear FROM clause. */
export function linearFrom(code: string): string {
  return code.replace(QUADRATIC_FROM, (_match, alias: string) => `$c.filter((${alias}) => typeof ${alias} !== "undefined").map((${alias}) => ({ ${alias}: ${alias} }))`);
}

/** Applies both rewrites to the engine @vercel/cosmosdb-server loads. Idempotent. */
export function makeQueriesLinear(): void {
  if (applied) return;
  applied = true;
  const serverRequire = createRequire(require.resolve('@vercel/cosmosdb-server'));
  const helpers = serverRequire('@zeit/cosmosdb-query/lib/helpers.js') as { stripUndefined: (value: unknown) => unknown };
  helpers.stripUndefined = stripUndefined;
  const makeQuery = (serverRequire('@zeit/cosmosdb-query') as { default: (sql: string) => QueryInstance }).default;
  const prototype = Object.getPrototypeOf(makeQuery('SELECT * FROM c')) as object;
  const original = Object.getOwnPropertyDescriptor(prototype, 'code');
  if (!original?.get) throw new Error('@zeit/cosmosdb-query changed: Query.prototype.code is not a getter');
  const generate = original.get;
  Object.defineProperty(prototype, 'code', {
    configurable: true,
    get(this: QueryInstance): string {
      if (!this._code) this._code = linearFrom(generate.call(this) as string);
      return this._code;
    },
  });
}
