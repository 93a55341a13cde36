/*
 * The service as a process, started the way the README says (`npm start`, `node example/dist/main.js`):
 * SIGTERM to the npm process stops it cleanly (port closed, no process left behind); a taken PORT is
 * named before anything starts; a start-up failure is one log line naming the variable; and the library's
 * main entry never loads the embedded server's package. These run the built code: it is built first when
 * older than the sources.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
// Shaped like an account key (64 bytes in base64), made up for this test.
const KEY = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 31 + 3) % 256)).toString('base64');

/** The newest modification time of the files under `dir` matching `pattern`; 0 when there are none. */
function newest(dir: string, pattern: RegExp): number {
  let time = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && pattern.test(entry.name)) time = Math.max(time, statSync(join(entry.parentPath, entry.name)).mtimeMs);
  }
  return time;
}

function builtIsCurrent(): boolean {
  try {
    const built = Math.min(statSync(join(ROOT, 'dist/index.js')).mtimeMs, statSync(join(ROOT, 'example/dist/main.js')).mtimeMs);
    return built >= Math.max(newest(join(ROOT, 'src'), /\.ts$/), newest(join(ROOT, 'example/src'), /\.ts$/));
  } catch {
    return false;
  }
}

beforeAll(() => {
  if (!builtIsCurrent()) execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore', timeout: 120_000 });
}, 130_000);

/** The environment of a spawned service: this one's, without any service variable or npm's own. */
function serviceEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(COSMOS_|PORT$|EVENT_TTL_SECONDS$|SUBSCRIPTIONS_|ADMIN_TOKEN$|npm_)/.test(name)),
  );
  return { ...clean, NO_COLOR: '1', ...env };
}

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const started: ChildProcess[] = [];

function run(command: string, args: string[], env: Record<string, string>): Run {
  // Its own process group, so that what is left of it can be found (and cleaned up) by its id.
  const child = spawn(command, args, { cwd: ROOT, env: serviceEnv(env), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => text, exited };
}

/** True while any process of the group `pgid` is alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

afterEach(() => {
  for (const child of started.splice(0)) if (child.pid !== undefined && groupAlive(child.pid)) process.kill(-child.pid, 'SIGKILL');
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function until(what: string, condition: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function answers(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/health/live`)).ok;
  } catch {
    return false;
  }
}

it('SIGTERM to the `npm start` process stops the service: the port closes and no process is left', async () => {
  const port = await freePort();
  const service = run('npm', ['start'], { PORT: String(port) });
  await until('the service to answer', () => answers(port), 30_000);
  process.kill(service.child.pid!, 'SIGTERM');
  await until('the port to close', async () => !(await answers(port)), 10_000);
  await until('every process of `npm start` to end', () => !groupAlive(service.child.pid!), 10_000);
  // A clean stop: the shutdown hooks ran.
  expect(service.output()).toMatch(/closed the embedded Cosmos DB server/);
}, 60_000);

it('SIGTERM stops the service at once though a client holds an idle connection open', async () => {
  const port = await freePort();
  const service = run('node', ['example/dist/main.js'], { PORT: String(port) });
  await until('the service to answer', () => answers(port), 30_000);
  // A client that connects and never sends a byte (or keeps a connection alive between requests).
  const idle = connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => idle.once('connect', () => resolve()));
  try {
    const stopping = Date.now();
    process.kill(service.child.pid!, 'SIGTERM');
    expect(await service.exited).toBe(0);
    expect(Date.now() - stopping).toBeLessThan(5_000);
  } finally {
    idle.destroy();
  }
}, 60_000);

it('a taken PORT is named before anything starts', async () => {
  const taken: Server = createServer();
  await new Promise<void>((resolve) => taken.listen(0, resolve));
  const { port } = taken.address() as AddressInfo;
  try {
    const service = run('node', ['example/dist/main.js'], { PORT: String(port) });
    expect(await service.exited).toBe(1);
    const output = service.output();
    expect(output).toContain(`start-up failed: PORT ${port} is in use by another process: stop it, or set PORT to a free port`);
    expect(output).not.toMatch(/starting subscribers|successfully started|embedded Cosmos DB server/);
  } finally {
    await new Promise<void>((resolve) => taken.close(() => resolve()));
  }
}, 30_000);

it('an endpoint that cannot be reached is one log line naming COSMOS_ENDPOINT, within the start-up time', async () => {
  const closed = await freePort();
  const service = run('node', ['example/dist/main.js'], {
    PORT: String(await freePort()),
    COSMOS_ENDPOINT: `http://127.0.0.1:${closed}/`,
    COSMOS_KEY: KEY,
    COSMOS_STARTUP_TIMEOUT_SECONDS: '2',
  });
  expect(await service.exited).toBe(1);
  const lines = service.output().trim().split('\n');
  // Every line is one log entry: no multi-line error dump.
  for (const line of lines) expect(line).toMatch(/^\[Nest\] \d+ /);
  const errors = lines.filter((line) => / ERROR /.test(line));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(/start-up failed: Cosmos DB at http:\/\/127\.0\.0\.1:\d+ could not be reached \(ECONNREFUSED\): check COSMOS_ENDPOINT/);
  expect(service.output()).not.toContain(KEY.slice(0, 12));
}, 30_000);

it('a keyless sign-in that fails is one log line naming COSMOS_KEY', async () => {
  const service = run('node', ['example/dist/main.js'], {
    PORT: String(await freePort()),
    COSMOS_ENDPOINT: `https://127.0.0.1:${await freePort()}/`,
    // DefaultAzureCredential reduced to its environment credential, given nothing: it fails at once, locally.
    AZURE_TOKEN_CREDENTIALS: 'EnvironmentCredential',
    AZURE_CLIENT_ID: '',
    AZURE_TENANT_ID: '',
  });
  expect(await service.exited).toBe(1);
  const lines = service.output().trim().split('\n');
  for (const line of lines) expect(line).toMatch(/^\[Nest\] \d+ /);
  const errors = lines.filter((line) => / ERROR /.test(line));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(/start-up failed: Cosmos DB at https:\/\/127\.0\.0\.1:\d+: signing in with Microsoft Entra ID failed \(COSMOS_KEY is not set\): set COSMOS_KEY/);
}, 30_000);

describe('the main entry', () => {
  /** The loaded CommonJS modules whose path names `name`, after importing `entry` (and running `then`) in a fresh Node. */
  function loadedBy(entry: string, name: string, then = ''): string[] {
    const script =
      `const entry = await import(${JSON.stringify(join(ROOT, entry))});` +
      then +
      `const { createRequire } = await import('node:module');` +
      `const cache = createRequire(import.meta.url).cache;` +
      `console.log(JSON.stringify(Object.keys(cache).filter((k) => k.includes(${JSON.stringify(name)}))));`;
    return JSON.parse(execFileSync('node', ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' })) as string[];
  }

  it('does not load @vercel/cosmosdb-server, and the testing entry loads it only when the embedded server starts', () => {
    expect(loadedBy('dist/index.js', '@vercel/cosmosdb-server')).toEqual([]);
    // The in-memory stores, given and the fault proxy need no server package.
    expect(loadedBy('dist/testing.js', '@vercel/cosmosdb-server')).toEqual([]);
    const started = loadedBy('dist/testing.js', '@vercel/cosmosdb-server', 'await (await entry.startEmbeddedCosmos()).close();');
    expect(started.length).toBeGreaterThan(0);
  });
});
