/**
 * The embedded Cosmos server in a child process of its own, for benchmarks: its CPU time and memory then stay
 * out of the figures of the process that measures the client (the machine's second core runs it).
 *
 * Run as a script (`node embedded-process.js`), it starts the server and prints `{ endpoint, key }` as one
 * JSON line, then runs until its stdin closes.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CosmosClient, type Container } from '@azure/cosmos';
import { ensureContainers, ensureDatabase } from '../src/index.js';
import { startEmbeddedCosmos } from '../src/testing.js';

export interface ServerProcess {
  endpoint: string;
  key: string;
  close(): Promise<void>;
}

const self = fileURLToPath(import.meta.url);

/** Starts the embedded server in a child process and returns its endpoint once it listens. */
export async function startServerProcess(): Promise<ServerProcess> {
  const child = spawn(process.execPath, [self], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`embedded server process exited with ${code}`)));
    createInterface({ input: child.stdout }).once('line', resolve);
  });
  const { endpoint, key } = JSON.parse(line) as { endpoint: string; key: string };
  return {
    endpoint,
    key,
    close: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.stdin.end();
      }),
  };
}

/** A client of `server` with a fresh database holding our two containers. */
export async function freshContainers(
  server: { endpoint: string; key: string },
  label: string,
): Promise<{ client: CosmosClient; events: Container; aggregates: Container }> {
  const client = new CosmosClient({
    endpoint: server.endpoint,
    key: server.key,
    connectionPolicy: { enableBackgroundEndpointRefreshing: false },
  });
  const database = await ensureDatabase(client, `bench-${label}-${Date.now()}`);
  await ensureContainers(database, 'events', 'aggregates');
  return { client, events: database.container('events'), aggregates: database.container('aggregates') };
}

if (process.argv[1] === self) {
  const cosmos = await startEmbeddedCosmos();
  process.stdout.write(`${JSON.stringify({ endpoint: cosmos.endpoint, key: cosmos.key })}\n`);
  process.stdin.resume();
  process.stdin.once('end', () => {
    void cosmos.close().then(() => process.exit(0));
  });
}
