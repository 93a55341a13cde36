/*
 * The health indicator against real endpoints: the embedded Cosmos server (up), a server that accepts
 * connections and never answers (timeout) and a closed port (down). It must answer every time, never throw.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import { CosmosClient, type Container } from '@azure/cosmos';
import { ensureContainers, ensureDatabase } from './cosmos-infrastructure.js';
import { startEmbeddedCosmos, type EmbeddedCosmos } from '../embedded-cosmos/index.js';
import { CosmosHealthIndicator } from './cosmos.health.js';

const clients: CosmosClient[] = [];

function containersAt(endpoint: string, key: string): [Container, Container] {
  // Without endpoint discovery: its account read does not take the caller's abort signal, and against a
  // server that never answers it would outlive the test (the SDK retries it after the socket closes).
  const client = new CosmosClient({ endpoint, key, connectionPolicy: { enableEndpointDiscovery: false } });
  clients.push(client);
  const database = client.database('health');
  return [database.container('events'), database.container('aggregates')];
}

let cosmos: EmbeddedCosmos;
let silent: Server;
const sockets = new Set<Socket>();

beforeAll(async () => {
  Logger.overrideLogger(false); // the failures below are expected: keep their warnings out of the test output
  cosmos = await startEmbeddedCosmos();
  const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
  clients.push(client);
  await ensureContainers(await ensureDatabase(client, 'health'), 'events', 'aggregates');
  silent = createServer((socket) => sockets.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  for (const client of clients) client.dispose();
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => silent.close(() => resolve()));
  await cosmos.close();
});

describe('CosmosHealthIndicator', () => {
  it('is up when Cosmos DB answers for both containers', async () => {
    const indicator = new CosmosHealthIndicator(...containersAt(cosmos.endpoint, cosmos.key));
    await expect(indicator.check()).resolves.toEqual({ status: 'ok', info: { cosmos: { status: 'up' } } });
  });

  it('is down, naming the cause, when a container does not exist', async () => {
    const client = new CosmosClient({ endpoint: cosmos.endpoint, key: cosmos.key });
    clients.push(client);
    const database = client.database('health');
    const indicator = new CosmosHealthIndicator(database.container('events'), database.container('missing'));
    await expect(indicator.check()).resolves.toEqual({
      status: 'error',
      error: { cosmos: { status: 'down', message: expect.stringMatching(/does not exist \(HTTP 404\)/) } },
    });
  });

  it('gives up after the timeout when Cosmos DB never answers', async () => {
    const { port } = silent.address() as AddressInfo;
    const indicator = new CosmosHealthIndicator(...containersAt(`http://127.0.0.1:${port}`, cosmos.key));
    const result = await indicator.check({ timeoutMs: 300 });
    expect(result).toEqual({
      status: 'error',
      error: { cosmos: { status: 'down', message: 'Cosmos DB did not answer within 300 ms' } },
    });
  });

  it('is down, without throwing, when nothing listens at the endpoint', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const indicator = new CosmosHealthIndicator(...containersAt(`http://127.0.0.1:${port}`, cosmos.key));
    await expect(indicator.check({ timeoutMs: 2_000 })).resolves.toEqual({
      status: 'error',
      error: { cosmos: { status: 'down', message: 'Cosmos DB is unreachable (ECONNREFUSED)' } },
    });
  });
});
