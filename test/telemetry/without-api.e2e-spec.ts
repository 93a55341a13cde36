/*
 * `@opentelemetry/api` is an optional peer: the built library, in a process where that package cannot be
 * resolved, loads, settles `telemetryReady()`, and stores and reads through the instrumented Cosmos DB
 * store as usual.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// A resolve hook that makes @opentelemetry/api missing, as in an app that does not install it.
const HOOK = `export async function resolve(specifier, context, next) {
  if (specifier === '@opentelemetry/api' || specifier.startsWith('@opentelemetry/api/')) {
    throw Object.assign(new Error("Cannot find package '@opentelemetry/api'"), { code: 'ERR_MODULE_NOT_FOUND' });
  }
  return next(specifier, context);
}`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOK)}`)});`;

const SCRIPT = `
const missing = await import('@opentelemetry/api').then(() => false, () => true);
const lib = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist/index.js')).href)});
const testing = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist/testing.js')).href)});
const { CosmosClient } = await import('@azure/cosmos');
await lib.telemetryReady();
const cosmos = await testing.startEmbeddedCosmos();
const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
const database = await lib.ensureDatabase(client, 'without-api');
await lib.ensureContainers(database);
const store = new lib.CosmosEventStore(database.container('events'));
await store.save('s', [{ version: 1, data: new Uint8Array([1]) }]);
const { records } = await store.load('s');
client.dispose();
await cosmos.close();
console.log(JSON.stringify({ missing, versions: records.map((r) => r.version), traceparent: lib.currentTraceparent() ?? null }));
`;

function builtIsCurrent(): boolean {
  if (!existsSync(join(ROOT, 'dist/index.js'))) return false;
  return statSync(join(ROOT, 'dist/modules/telemetry/otel-api.js'), { throwIfNoEntry: false }) !== undefined;
}

it('the library runs without @opentelemetry/api installed', () => {
  if (!builtIsCurrent()) execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore', timeout: 120_000 });
  const out = execFileSync(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`, '--input-type=module', '-e', SCRIPT],
    { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
  );
  expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({ missing: true, versions: [1], traceparent: null });
}, 180_000);
