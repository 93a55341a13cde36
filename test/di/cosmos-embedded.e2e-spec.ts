/*
 * The embedded default for consumers: `CosmosModule.forRoot({ embeddedWhenNoEndpoint: true })` without an
 * endpoint starts an embedded in-memory server, says the data is in memory only, and closes it when the
 * application closes; without the flag, a missing endpoint is an error, and so is a missing embedded
 * server package.
 */
import { createConnection } from 'node:net';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { CosmosClient } from '@azure/cosmos';
import { COSMOS_CLIENT, CosmosModule, EventStoreModule, STORE, type CosmosModuleOptions } from '../../src/index.js';
import { openAccount } from '../../src/modules/cosmos/cosmos-account.js';
import { CapturingLogger } from '../support/app.js';

async function boot(imports: unknown[], logger: CapturingLogger | false = false) {
  // The logger from the start: the module's providers log while the module compiles.
  const builder = Test.createTestingModule({ imports: imports as never[] });
  const moduleRef = await (logger ? builder.setLogger(logger) : builder).compile();
  return moduleRef.createNestApplication({ logger }).init();
}

/** Resolves to true when something accepts TCP connections at the endpoint's port. */
function listening(endpoint: string): Promise<boolean> {
  const { hostname, port } = new URL(endpoint);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('CosmosModule with embeddedWhenNoEndpoint', () => {
  it('starts an embedded server when no endpoint is given, warns that data is in memory only, and closes it with the app', async () => {
    const logger = new CapturingLogger();
    const app = await boot([CosmosModule.forRoot({ databaseId: 'dev', embeddedWhenNoEndpoint: true }), EventStoreModule], logger);
    await app.get(STORE).save('dev-1', [{ version: 1, data: new Uint8Array([7]) }]);
    expect((await app.get(STORE).load('dev-1')).records).toHaveLength(1);

    const warning = logger.lines.find((l) => l.level === 'warn' && /embedded Cosmos DB server/.test(l.message));
    expect(warning?.message).toMatch(/in memory only/);
    const endpoint = /at (http:\/\/127\.0\.0\.1:\d+)/.exec(warning?.message ?? '')?.[1];
    expect(endpoint).toBeDefined();
    expect(await app.get<CosmosClient>(COSMOS_CLIENT).getReadEndpoint()).toContain(endpoint);
    expect(await listening(endpoint!)).toBe(true);

    await app.close();
    expect(await listening(endpoint!)).toBe(false);
    expect(logger.text).toMatch(/closed the embedded Cosmos DB server/);
  });

  it('uses the endpoint when one is given, starting nothing', async () => {
    // A server of our own stands for "an account": the module must use it, not start another.
    const { startEmbeddedCosmos } = await import('../../src/testing.js');
    const account = await startEmbeddedCosmos();
    const logger = new CapturingLogger();
    try {
      const app = await boot(
        [CosmosModule.forRoot({ endpoint: account.endpoint, key: account.key, databaseId: 'acct', embeddedWhenNoEndpoint: true })],
        logger,
      );
      expect(await app.get<CosmosClient>(COSMOS_CLIENT).getReadEndpoint()).toContain(account.endpoint);
      await app.close();
      expect(logger.text).not.toMatch(/embedded Cosmos DB server/);
      expect(logger.text).toMatch(/with an account key/);
    } finally {
      await account.close();
    }
  });

  it('refuses a missing endpoint without it, and a key or credential without an endpoint, naming the option', async () => {
    Logger.overrideLogger(false);
    await expect(boot([CosmosModule.forRoot({ databaseId: 'x' } as CosmosModuleOptions)])).rejects.toThrow(
      /"endpoint" is required: .*embeddedWhenNoEndpoint: true/,
    );
    await expect(
      boot([CosmosModule.forRoot({ databaseId: 'x', key: 'a2V5', embeddedWhenNoEndpoint: true })]),
    ).rejects.toThrow(/"key" is given without "endpoint"/);
  });

  it('names the package to install when @vercel/cosmosdb-server is missing', async () => {
    const missing = Object.assign(new Error("Cannot find module '@vercel/cosmosdb-server'\nRequire stack:\n- /app/x.js"), {
      code: 'MODULE_NOT_FOUND',
    });
    await expect(
      openAccount({ databaseId: 'x', embeddedWhenNoEndpoint: true }, new Logger('test'), () => Promise.reject(missing)),
    ).rejects.toThrow(/embeddedWhenNoEndpoint needs the optional peer dependency @vercel\/cosmosdb-server, which is not installed: install it/);
  });
});
