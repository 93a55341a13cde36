import { createRequire } from 'node:module';
import fc from 'fast-check';
import { linearFrom, stripUndefined } from './linear-queries.js';

const require = createRequire(import.meta.url);
const serverRequire = createRequire(require.resolve('@vercel/cosmosdb-server'));
const engine = (path: string) => serverRequire(`@zeit/cosmosdb-query/lib/${path}`) as { default: (...args: unknown[]) => unknown };
const parse = (serverRequire('@zeit/cosmosdb-query/lib/parser.js') as { parse: (sql: string) => unknown }).parse;
const transform = engine('transformer.js').default as (ast: unknown) => unknown;
const generate = (serverRequire('@babel/generator') as { default: (ast: unknown) => { code: string } }).default;
const execute = engine('executor.js').default as (docs: unknown[], options: object) => { result: unknown[] };

/** The engine's own code for `sql`, generated without going through the patched getter. */
const originalCode = (sql: string) => generate(transform(parse(sql))).code;

const QUERIES = [
  'SELECT c.v, c.d, c.t FROM c WHERE c.a = @a AND (NOT IS_DEFINED(c.t) OR c.t = 0 OR c.t > @now) ORDER BY c.v ASC',
  'SELECT c.v, c.d, c.t FROM c WHERE c.a = @a AND (NOT IS_DEFINED(c.t) OR c.t = 0 OR c.t > @now) ORDER BY c.v DESC',
  'SELECT * FROM c WHERE c.pk = @a AND (NOT IS_DEFINED(c.t) OR c.t = 0 OR c.t > @now) AND STARTSWITH(c.sk, @v) ORDER BY c.sk ASC',
  'SELECT * FROM c WHERE c.gsi3pk = @a AND c.gsi3sk >= @v ORDER BY c.gsi3sk ASC',
];

const doc = fc.record(
  {
    id: fc.string({ maxLength: 4 }),
    _rid: fc.string({ minLength: 1, maxLength: 4 }),
    a: fc.constantFrom('x', 'y'),
    pk: fc.constantFrom('x', 'y'),
    gsi3pk: fc.constantFrom('x', 'y'),
    v: fc.integer({ min: 0, max: 30 }),
    sk: fc.string({ maxLength: 3 }),
    gsi3sk: fc.string({ maxLength: 3 }),
    d: fc.option(fc.string({ maxLength: 4 }), { nil: undefined }),
    t: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
  },
  { requiredKeys: ['id', '_rid'] },
);

describe('linear queries of the embedded server', () => {
  it.each(QUERIES)('rewrites the FROM clause of %s and returns what the engine returns', (sql) => {
    const code = originalCode(sql);
    expect(linearFrom(code)).not.toBe(code);
    expect(linearFrom(code)).not.toContain('[...$');
    fc.assert(
      fc.property(fc.array(doc, { maxLength: 25 }), fc.string({ maxLength: 2 }), fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }), (docs, v, maxItemCount) => {
        const options = { parameters: [{ name: '@a', value: 'x' }, { name: '@now', value: 10 }, { name: '@v', value: v }], maxItemCount };
        expect(execute(docs, { ...options, code: linearFrom(code) })).toEqual(execute(docs, { ...options, code }));
      }),
      { numRuns: 100 },
    );
  });

  it('strips undefined as the engine does: from arrays and object fields, at any depth', () => {
    expect(stripUndefined([1, undefined, { a: undefined, b: [undefined, 2], c: null }])).toEqual([1, { b: [2], c: null }]);
    // A field named __proto__ (JSON.parse makes it an own field) stays a field, not a prototype.
    expect(JSON.stringify(stripUndefined(JSON.parse('{"__proto__":{"x":1},"y":2}')))).toBe('{"__proto__":{"x":1},"y":2}');
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const stripped = stripUndefined(value);
        expect(JSON.stringify(stripped)).toBe(JSON.stringify(value, (_k, v: unknown) => (Array.isArray(v) ? v.filter((e) => e !== undefined) : v)));
      }),
      { numRuns: 200 },
    );
  });
});
