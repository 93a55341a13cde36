/*
 * The operator CLI (issue 19) against the embedded server, run in-process through `main` with its output
 * captured: a stream dumped, a document shown, a group stopped on a failure shown, its dead letter replayed
 * through the app's handler, the group resumed; a running group stopped on every instance and resumed; exit
 * codes and --json; no secret printed.
 */
import { randomUUID } from 'node:crypto';
import { CosmosEventStore, CosmosOpaqueStore, EVENTS_INDEXING_POLICY, JsonEventSerializer, LEASES_PARTITION_KEY_PATH, SUBSCRIPTIONS, type Subscriptions } from '../../src/index.js';
import { EXIT, main } from '../../src/cli/cli.js';
import { startCosmosFixture, type CosmosFixture } from '../support/cosmos.js';
import { eventually } from '../support/subscriptions.js';
import { behaviour } from './app-fixture.js';

let fixture: CosmosFixture;
let env: NodeJS.ProcessEnv;
let store: CosmosEventStore;

beforeAll(async () => {
  fixture = await startCosmosFixture();
  env = {
    COSMOS_ENDPOINT: fixture.cosmos.endpoint,
    COSMOS_KEY: fixture.cosmos.key,
    COSMOS_DATABASE: fixture.events.database.id,
  };
  store = new CosmosEventStore(fixture.events, { opaqueStore: new CosmosOpaqueStore(fixture.aggregates) });
});

afterAll(async () => {
  await fixture?.close();
});

interface Run {
  code: number;
  out: string;
  err: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed CLI output, checked by the tests
  json: () => any;
}

async function cli(...argv: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), env });
  // Whatever a command prints, never the key.
  expect(out + err).not.toContain(fixture.cosmos.key);
  return { code, out, err, json: () => JSON.parse(out) };
}

describe('nest-cosmos-eventstore CLI', () => {
  it('ensure creates the leases container beside the existing ones', async () => {
    const run = await cli('--json', 'ensure');
    expect(run.code).toBe(EXIT.ok);
    expect(run.json()).toEqual({ database: fixture.events.database.id, containers: ['events', 'aggregates', 'leases'], indexingPolicyApplied: false });
    const { resource } = await fixture.events.database.container('leases').read();
    expect(resource?.partitionKey?.paths).toEqual([LEASES_PARTITION_KEY_PATH]);
  });

  it('ensure --indexing-policy applies the library\'s indexing policy to an existing container', async () => {
    const database = fixture.events.database;
    const id = `old-${randomUUID()}`;
    // A container as an earlier version (or Go) created it: the default index-everything policy.
    await database.containers.create({ id, partitionKey: { paths: ['/a'] } });
    const policyOf = async () => (await database.container(id).read()).resource?.indexingPolicy;
    const run = await main(['--json', 'ensure', '--indexing-policy'], { stdout: () => undefined, stderr: () => undefined, env: { ...env, COSMOS_EVENTS_CONTAINER: id } });
    expect(run).toBe(EXIT.ok);
    expect((await policyOf())?.excludedPaths).toEqual(expect.arrayContaining(EVENTS_INDEXING_POLICY.excludedPaths ?? []));
    expect((await policyOf())?.includedPaths).toEqual(expect.arrayContaining(EVENTS_INDEXING_POLICY.includedPaths ?? []));
  });

  it('dump decodes what the JSON serializer wrote and shows other bytes raw', async () => {
    const stream = `Order/${randomUUID()}`;
    const data = new JsonEventSerializer().serialize({ type: 'Placed', aggregateId: stream, version: 1, at: 5, actor: 'ann', payload: { total: 3 } });
    await store.save(stream, [{ version: 1, data }, { version: 2, data: new Uint8Array([0xff, 0x00]) }]);
    const run = await cli('--json', 'dump', stream, '--page-size', '1');
    expect(run.code).toBe(EXIT.ok);
    expect(run.json()).toEqual({
      stream,
      records: [
        { version: 1, type: 'Placed', at: 5, actor: 'ann', payload: { total: 3 } },
        { version: 2, data: Buffer.from([0xff, 0x00]).toString('base64') },
      ],
    });
    const raw = await cli('dump', stream, '--raw');
    expect(raw.out.trim().split('\n')).toHaveLength(2);
    expect(JSON.parse(raw.out.split('\n')[0])).toEqual({ version: 1, data: Buffer.from(data).toString('base64') });
  });

  it('aggregate shows a document with its body decoded; a missing one exits 3', async () => {
    const pk = randomUUID();
    await new CosmosOpaqueStore(fixture.aggregates).put({ pk, sk: 'order', version: 4, body: new TextEncoder().encode('{"total":7}') });
    const run = await cli('--json', 'aggregate', pk, 'order');
    expect(run.code).toBe(EXIT.ok);
    expect(run.json()).toMatchObject({ pk, sk: 'order', version: 4, body: { total: 7 } });
    const missing = await cli('--json', 'aggregate', pk, 'nothing');
    expect(missing.code).toBe(EXIT.notFound);
    expect(JSON.parse(missing.err)).toMatchObject({ error: { name: 'NotFoundError' }, exitCode: EXIT.notFound });
  });

  it('bad usage and a missing environment exit 2 before any request', async () => {
    expect((await cli('no-such-command')).code).toBe(EXIT.usage);
    expect((await cli('dump')).code).toBe(EXIT.usage);
    const saved = env;
    env = { COSMOS_KEY: saved.COSMOS_KEY };
    const run = await cli('dump', 'x');
    env = saved;
    expect(run.code).toBe(EXIT.usage);
    expect(run.err).toContain('COSMOS_ENDPOINT is required');
    expect((await cli('--help')).code).toBe(EXIT.ok);
  });

  it('shows a group stopped on a failure, replays its dead letter through the app, resumes it', async () => {
    const stream = `Order/${randomUUID()}`;
    behaviour.fail = true;
    // The app runs as the service would, until its handler fails and the group stops (on the first event of
    // the container: the one below, or one of an earlier test).
    const { NestFactory } = await import('@nestjs/core');
    Object.assign(process.env, env);
    const { FixtureAppModule } = await import('./app-fixture.js');
    const app = await NestFactory.createApplicationContext(FixtureAppModule, { logger: false, abortOnError: false });
    const subscriptions = app.get<Subscriptions>(SUBSCRIPTIONS);
    await store.save(stream, [{ version: 1, data: new TextEncoder().encode('{}') }]);
    await eventually('the group stops', async () => (await subscriptions.lag('strict'))[0].state === 'stopped');
    await app.close();

    const shown = await cli('--json', 'groups', 'strict');
    expect(shown.code).toBe(EXIT.ok);
    const [group] = shown.json().groups;
    expect(group).toMatchObject({ name: 'strict', state: 'stopped', deadLetters: 1 });
    expect(group.parkedAggregates).toHaveLength(1);
    expect(group.leases.length).toBeGreaterThan(0);
    expect((await cli('groups', 'strict')).out).toContain('strict: stopped');

    const listed = await cli('--json', 'dead-letters', 'list', 'strict');
    const [letter] = listed.json().deadLetters;
    expect(letter).toMatchObject({ aggregateId: group.parkedAggregates[0], policy: 'stop' });
    expect(letter.error.message).toBe(`cannot handle ${letter.aggregateId}@${letter.version}`);

    // Without the app the CLI has no handler: replay needs --app.
    expect((await cli('dead-letters', 'replay', 'strict', letter.id)).code).toBe(EXIT.usage);
    const app2 = 'test/cli/app-fixture.ts#FixtureAppModule';
    expect((await cli('--json', 'dead-letters', 'replay', 'strict', 'no-such-letter', '--app', app2)).code).toBe(EXIT.notFound);
    // The handler still fails: exit 4, the letter kept.
    const again = await cli('--json', 'dead-letters', 'replay', 'strict', letter.id, '--app', app2);
    expect(again.code).toBe(EXIT.replayFailed);
    expect(JSON.parse(again.err).error.name).toBe('DeadLetterReplayError');
    expect((await cli('--json', 'dead-letters', 'list', 'strict')).json().deadLetters).toHaveLength(1);
    // Fixed: the app's handler takes the event, the letter goes.
    behaviour.fail = false;
    const replayed = await cli('--json', 'dead-letters', 'replay', 'strict', letter.id, '--app', app2);
    expect(replayed.err).toBe('');
    expect(replayed.code).toBe(EXIT.ok);
    expect(replayed.json()).toEqual({ group: 'strict', id: letter.id, replayed: true });
    expect(behaviour.handled).toEqual([`${letter.aggregateId}@${letter.version}`]);
    expect((await cli('--json', 'dead-letters', 'list', 'strict')).json().deadLetters).toEqual([]);
    const resumed = await cli('--json', 'group', 'resume', 'strict');
    expect(resumed.json()).toEqual({ group: 'strict', resumed: true });
    expect((await cli('--json', 'groups', 'strict')).json().groups[0].state).toBe('running');
    // A name no instance ever ran: nothing in the leases container, shown as such.
    const unknown = await cli('--json', 'groups', 'no-such-group');
    expect(unknown.code).toBe(EXIT.ok);
    expect(unknown.json().groups[0]).toMatchObject({ state: 'not-started', deadLetters: 0, owners: [] });
  });

  it('group stop stops a group on every instance, the running app\'s too, until group resume', async () => {
    behaviour.fail = false;
    const { NestFactory } = await import('@nestjs/core');
    Object.assign(process.env, env);
    const { FixtureAppModule } = await import('./app-fixture.js');
    const app = await NestFactory.createApplicationContext(FixtureAppModule, { logger: false, abortOnError: false });
    try {
      const subscriptions = app.get<Subscriptions>(SUBSCRIPTIONS);
      await subscriptions.waitForCatchUp('strict', { timeoutMs: 10_000 });
      await eventually('the app reads', () => subscriptions.status()[0].ownedRanges.length > 0);

      const stopped = await cli('--json', 'group', 'stop', 'strict', '--reason', 'maintenance');
      expect(stopped.err).toBe('');
      expect(stopped.code).toBe(EXIT.ok);
      expect(stopped.json()).toEqual({ group: 'strict', stopped: true, reason: 'maintenance' });
      await eventually('the app lets go', () => subscriptions.status()[0].ownedRanges.length === 0);
      const [group] = (await cli('--json', 'groups', 'strict')).json().groups;
      expect(group).toMatchObject({ state: 'stopped', reason: 'maintenance', stoppedBy: 'operator' });
      expect((await cli('groups', 'strict')).out).toContain('strict: stopped by an operator (maintenance)');
      // Already stopped: it stays so, its reason kept.
      expect((await cli('group', 'stop', 'strict')).out).toBe('strict: stopped (maintenance)\n');
      // A name that never ran is refused, and leaves nothing behind.
      const typo = await cli('--json', 'group', 'stop', 'strictt');
      expect(typo.code).toBe(EXIT.notFound);
      expect((await cli('--json', 'groups', 'strictt')).json().groups[0]).toMatchObject({ state: 'not-started' });

      const stream = `Order/${randomUUID()}`;
      await store.save(stream, [{ version: 1, data: new TextEncoder().encode('{}') }]);
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(behaviour.handled).not.toContain(`${stream}@1`);

      expect((await cli('--json', 'group', 'resume', 'strict')).json()).toEqual({ group: 'strict', resumed: true });
      await subscriptions.waitForCatchUp('strict', { timeoutMs: 10_000 });
      expect(behaviour.handled.filter((h) => h === `${stream}@1`)).toHaveLength(1);
    } finally {
      await app.close();
    }
  });
});
