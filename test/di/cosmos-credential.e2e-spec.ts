/*
 * Keyless sign-in: with a `credential` and no key, every request carries the credential's token, as
 * @azure/cosmos sends Microsoft Entra ID tokens (`type=aad&ver=1.0&sig=<token>`), seen at the fault proxy
 * (the embedded server ignores authorization). Tokens go over https only, so the client reaches the proxy
 * through a TLS front with a certificate made for this run and trusted by this client alone (verification
 * stays on). Without key and credential, DefaultAzureCredential comes from the optional peer
 * @azure/identity, and its absence is an error naming it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { Test } from '@nestjs/testing';
import { DefaultAzureCredential } from '@azure/identity';
import { CosmosModule, EventStoreModule, STORE, type CosmosModuleOptions, type CosmosTokenCredential } from '../../src/index.js';
import { defaultAzureCredential } from '../../src/modules/cosmos/cosmos-credential.js';
import { startEmbeddedCosmos, startFaultProxy, type EmbeddedCosmos, type FaultProxy } from '../../src/testing.js';

let cosmos: EmbeddedCosmos;
let proxy: FaultProxy;
let front: TlsServer;
let cert: string;
let httpsEndpoint: string;
const sockets = new Set<Socket>();
const authorizations: string[] = [];

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cosmos-tls-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const key = readFileSync(join(dir, 'key.pem'), 'utf8');
    cosmos = await startEmbeddedCosmos();
    proxy = await startFaultProxy({ target: cosmos.endpoint });
    const proxyPort = Number(new URL(proxy.endpoint).port);
    // TLS in front of the proxy: decrypted bytes go to it unchanged.
    front = createTlsServer({ key, cert }, (tls) => {
      const plain = connect(proxyPort, '127.0.0.1');
      for (const s of [tls, plain]) {
        sockets.add(s);
        s.on('error', () => s.destroy());
        s.on('close', () => sockets.delete(s));
      }
      tls.pipe(plain).pipe(tls);
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    httpsEndpoint = `https://127.0.0.1:${(front.address() as AddressInfo).port}/`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  proxy.addRule({
    match: (request) => {
      authorizations.push(String(request.headers.authorization ?? '(none)'));
      return false;
    },
    action: { type: 'latency', ms: 0 },
  });
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => front?.close(() => resolve()));
  await proxy?.close();
  await cosmos?.close();
});

/** A credential that hands out numbered tokens and remembers the scopes asked for. */
class FakeCredential implements CosmosTokenCredential {
  readonly scopes: string[] = [];
  private issued = 0;
  async getToken(scopes: string | string[]) {
    this.scopes.push(...(Array.isArray(scopes) ? scopes : [scopes]));
    return { token: `fake-token-${++this.issued}`, expiresOnTimestamp: Date.now() + 3_600_000 };
  }
}

function keyless(overrides: Partial<CosmosModuleOptions>): CosmosModuleOptions {
  return {
    endpoint: httpsEndpoint,
    databaseId: `keyless-${Math.random().toString(36).slice(2)}`,
    clientOptions: {
      agent: new Agent({ ca: cert, keepAlive: false }),
      // The account document names the plain-HTTP proxy: stay on the TLS endpoint given.
      connectionPolicy: { enableEndpointDiscovery: false },
    },
    ...overrides,
  };
}

async function boot(imports: unknown[]) {
  const moduleRef = await Test.createTestingModule({ imports: imports as never[] }).compile();
  return moduleRef.createNestApplication({ logger: false }).init();
}

describe('signing in with a credential', () => {
  it('sends the credential\'s token on every request, for the account\'s scope', async () => {
    const credential = new FakeCredential();
    authorizations.length = 0;
    const app = await boot([CosmosModule.forRoot(keyless({ credential })), EventStoreModule]);
    await app.get(STORE).save('keyless-1', [{ version: 1, data: new Uint8Array([1]) }]);
    expect((await app.get(STORE).load('keyless-1')).records).toHaveLength(1);
    await app.close();
    expect(authorizations.length).toBeGreaterThan(3);
    for (const header of authorizations) expect(header).toMatch(/^type=aad&ver=1\.0&sig=fake-token-\d+$/);
    expect(new Set(credential.scopes)).toEqual(new Set([`${httpsEndpoint.replace(/\/$/, '')}/.default`]));
  });

  it('fails start-up with the credential\'s own error when it cannot sign in', async () => {
    const credential: CosmosTokenCredential = {
      getToken: async () => {
        throw Object.assign(new Error('ManagedIdentityCredential: no managed identity endpoint found'), {
          name: 'CredentialUnavailableError',
        });
      },
    };
    await expect(boot([CosmosModule.forRoot(keyless({ credential }))])).rejects.toMatchObject({
      name: 'CredentialUnavailableError',
    });
  });

  it('refuses a credential given with a key, a credential that is not one, and a plain-HTTP endpoint', async () => {
    await expect(boot([CosmosModule.forRoot(keyless({ credential: new FakeCredential(), key: cosmos.key }))])).rejects.toThrow(
      /"credential" cannot be given with "key"/,
    );
    await expect(boot([CosmosModule.forRoot(keyless({ credential: {} as CosmosTokenCredential }))])).rejects.toThrow(
      /"credential" must be a TokenCredential/,
    );
    await expect(
      boot([CosmosModule.forRoot(keyless({ endpoint: cosmos.endpoint, credential: new FakeCredential() }))]),
    ).rejects.toThrow(/"endpoint" must be an https URL to sign in with a credential/);
  });
});

describe('DefaultAzureCredential, without key or credential', () => {
  it('comes from @azure/identity, loaded only then', async () => {
    await expect(defaultAzureCredential()).resolves.toBeInstanceOf(DefaultAzureCredential);
  });

  it('names the package to install when @azure/identity is missing', async () => {
    const missing = Object.assign(new Error("Cannot find package '@azure/identity' imported from /app/dist/cosmos.module.js"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    await expect(defaultAzureCredential(() => Promise.reject(missing))).rejects.toThrow(
      /DefaultAzureCredential from @azure\/identity, which is not installed: install it \(npm install @azure\/identity\), or give "key" or "credential"/,
    );
    // Any other failure passes unchanged.
    const other = new Error('boom');
    await expect(defaultAzureCredential(() => Promise.reject(other))).rejects.toBe(other);
  });
});
