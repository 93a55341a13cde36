import 'reflect-metadata';
import { resolve } from 'node:path';
import { hostname } from 'node:os';
import { pathToFileURL } from 'node:url';
import { CosmosClient, type Container } from '@azure/cosmos';
import { Module, type DynamicModule, type INestApplicationContext, type Type } from '@nestjs/common';
import { Command, CommanderError } from 'commander';
import { CosmosModule, ensureContainers, ensureDatabase, messageOf, statusOf } from '../modules/cosmos/index.js';
import { defaultAzureCredential } from '../modules/cosmos/cosmos-credential.js';
import { CosmosEventStore, CosmosOpaqueStore, decodeAggregateBody, EventStoreModule, NotFoundError } from '../modules/event-store/index.js';
import { JsonEventSerializer } from '../modules/event-sourcing/index.js';
import {
  DeadLetterReplayError,
  LEASES_PARTITION_KEY_PATH,
  OnStoredEvent,
  Subscriber,
  SUBSCRIPTIONS,
  SubscriptionsModule,
  UnknownDeadLetterError,
  UnknownSubscriberError,
  type DeadLetter,
  type StartFrom,
  type Subscriptions,
} from '../modules/subscriptions/index.js';
import { CliUsageError, readCliConfig, type CliConfig } from './config.js';

/** The CLI's exit codes. */
export const EXIT = Object.freeze({
  ok: 0,
  /** Cosmos DB or the command failed. */
  failed: 1,
  /** Bad arguments or environment: nothing was sent. */
  usage: 2,
  /** No such stream document, consumer group or dead letter. */
  notFound: 3,
  /** A replayed dead letter failed again (the letter is kept). */
  replayFailed: 4,
});

/** Where the CLI writes and what it reads: the process's own, or a test's. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
};

interface Output {
  json: boolean;
}

/**
 * Runs the operator CLI (`npx nest-cosmos-eventstore <command>`) on `argv` (the arguments after the
 * program name) and resolves with its exit code; never exits the process itself.
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let code: number = EXIT.ok;
  let config: CliConfig | undefined;
  const print = (json: boolean, value: unknown, text: () => string) => io.stdout(json ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`);
  const configOf = () => (config ??= readCliConfig(io.env));
  const program = new Command('nest-cosmos-eventstore')
    .description('Operate an event store on Azure Cosmos DB: streams, aggregates, consumer groups, dead letters, containers.')
    .addHelpText(
      'after',
      '\nConfiguration (environment): COSMOS_ENDPOINT, COSMOS_KEY (absent: Microsoft Entra ID), COSMOS_DATABASE (eventstore),\n' +
        'COSMOS_EVENTS_CONTAINER (events), COSMOS_AGGREGATES_CONTAINER (aggregates), COSMOS_LEASES_CONTAINER (leases).\n' +
        'Exit codes: 0 done, 1 failed, 2 bad usage or configuration, 3 not found, 4 a replayed dead letter failed again.',
    )
    .option('--json', 'print JSON instead of text')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  const json = () => Boolean(program.opts<Output>().json);

  program
    .command('dump')
    .description('print a stream\'s records, decoded by the JSON serializer where it can, raw (base64) otherwise')
    .argument('<stream>', 'the stream id (a repository\'s `<AggregateType>/<id>`, or protosource\'s)')
    .option('--raw', 'never decode: version, expiry and base64 bytes')
    .option('--page-size <n>', 'records per request', (v) => positiveInt('--page-size', v), 1000)
    .action(async (stream: string, options: { raw?: boolean; pageSize: number }) => {
      await withClient(configOf(), async (client, cfg) => {
        const store = new CosmosEventStore(container(client, cfg, cfg.eventsContainerId));
        const serializer = new JsonEventSerializer();
        const records: unknown[] = [];
        for await (const record of store.readStream(stream, { pageSize: options.pageSize })) {
          const raw = { version: record.version, ...(record.ttl ? { ttl: record.ttl } : {}), data: Buffer.from(record.data).toString('base64') };
          if (options.raw) {
            records.push(raw);
            continue;
          }
          try {
            const envelope = serializer.deserialize(record.data);
            records.push({ version: record.version, ...(record.ttl ? { ttl: record.ttl } : {}), type: envelope.type, at: envelope.at, actor: envelope.actor, payload: envelope.payload });
          } catch {
            records.push(raw);
          }
        }
        print(json(), { stream, records }, () =>
          records.length === 0 ? `${stream}: no records` : records.map((r) => JSON.stringify(r)).join('\n'),
        );
      });
    });

  program
    .command('aggregate')
    .description('print a document of the aggregates container, its body decoded when it is JSON')
    .argument('<pk>', 'partition key')
    .argument('<sk>', 'sort key')
    .action(async (pk: string, sk: string) => {
      await withClient(configOf(), async (client, cfg) => {
        const doc = await new CosmosOpaqueStore(container(client, cfg, cfg.aggregatesContainerId)).get(pk, sk);
        let body: unknown;
        try {
          body = decodeAggregateBody(doc.body);
        } catch {
          body = { base64: Buffer.from(doc.body).toString('base64') };
        }
        const shown = { pk: doc.pk, sk: doc.sk, version: doc.version, t: doc.t, gsi: doc.gsi, body };
        print(json(), shown, () => JSON.stringify(shown, null, 2));
      });
    });

  program
    .command('groups')
    .description('show consumer groups: state, owners, leases (feed ranges), lag and dead letters')
    .argument('<name...>', 'consumer group (subscriber) names')
    .option('--app <module>', appHelp)
    .action(async (names: string[], options: { app?: string }) => {
      await withSubscriptions(configOf(), names, options.app, async (subscriptions) => {
        const groups: GroupView[] = [];
        for (const name of names) {
          const [lag] = await subscriptions.lag(name);
          const letters = await subscriptions.deadLetters(name);
          groups.push({
            name,
            state: lag.state,
            ...(lag.reason ? { reason: lag.reason } : {}),
            ...(lag.stoppedBy ? { stoppedBy: lag.stoppedBy } : {}),
            estimatedPending: lag.estimatedPending,
            behindMs: lag.behindMs,
            owners: [...new Set(lag.ranges.flatMap((r) => (r.owner ? [r.owner] : [])))],
            leases: lag.ranges.map((r) => ({ range: r.range, owner: r.owner ?? null, estimatedPending: r.estimatedPending })),
            // Aggregates a group passes over after a failure are the ones its dead letters name.
            parkedAggregates: [...new Set(letters.map((l) => l.aggregateId))],
            deadLetters: letters.length,
          });
        }
        print(json(), { groups }, () =>
          groups
            .map((g) =>
              [
                `${g.name}: ${g.state}${g.stoppedBy ? ` by ${g.stoppedBy === 'operator' ? 'an operator' : 'a failure'}` : ''}${g.reason ? ` (${g.reason})` : ''}, ~${g.estimatedPending} pending, ${g.behindMs} ms behind, ${g.deadLetters} dead letter(s)`,
                ...g.leases.map((l) => `  range ${l.range}: owner ${l.owner ?? '-'}, ~${l.estimatedPending} pending`),
                ...(g.parkedAggregates.length > 0 ? [`  parked: ${g.parkedAggregates.join(', ')}`] : []),
              ].join('\n'),
            )
            .join('\n'),
        );
      });
    });

  const group = program.command('group').description('act on a consumer group, on every instance');
  group
    .command('resume')
    .description('let a group stopped on a failure run again from its checkpoint')
    .argument('<name>')
    .option('--app <module>', appHelp)
    .action(async (name: string, options: { app?: string }) => {
      await withSubscriptions(configOf(), [name], options.app, async (subscriptions) => {
        await subscriptions.resume(name);
        print(json(), { group: name, resumed: true }, () => `${name}: resumed`);
      });
    });
  group
    .command('rebuild')
    .description('reset a group to read again (calls the subscriber\'s onRebuild: needs --app)')
    .argument('<name>')
    .requiredOption('--app <module>', appHelp)
    .option('--from <from>', 'beginning, now, or an ISO date', 'beginning')
    .action(async (name: string, options: { app: string; from: string }) => {
      const from = startFrom(options.from);
      await withSubscriptions(configOf(), [name], options.app, async (subscriptions) => {
        await subscriptions.rebuild(name, { from });
        print(json(), { group: name, rebuilt: true, from: options.from }, () => `${name}: rebuilt from ${options.from}`);
      });
    });
  group
    .command('stop')
    .description('stop a group on every instance until `group resume` (readers checkpoint their page first)')
    .argument('<name>')
    .option('--reason <text>', 'why, shown by `groups` and the health check (default: stopped by an operator)')
    .option('--app <module>', appHelp)
    .action(async (name: string, options: { reason?: string; app?: string }) => {
      await withSubscriptions(configOf(), [name], options.app, async (subscriptions) => {
        // Without the app any name is taken: a mistyped one must not leave a stopped group nobody runs.
        if (!options.app && (await subscriptions.lag(name))[0].state === 'not-started') {
          throw new NotFoundError(`no consumer group ${JSON.stringify(name)} has run against this database (give --app to stop one before it first runs)`);
        }
        await subscriptions.stopGroup(name, options.reason === undefined ? {} : { reason: options.reason });
        // A group stopped before (on a failure, say) keeps its own reason: show the one in force.
        const [lag] = await subscriptions.lag(name);
        const reason = lag.reason ?? options.reason ?? 'stopped';
        print(json(), { group: name, stopped: true, reason }, () => `${name}: stopped (${reason})`);
      });
    });

  const letters = program.command('dead-letters').description('list, replay or discard dead letters');
  letters
    .command('list')
    .argument('<group>')
    .option('--app <module>', appHelp)
    .action(async (name: string, options: { app?: string }) => {
      await withSubscriptions(configOf(), [name], options.app, async (subscriptions) => {
        const found = (await subscriptions.deadLetters(name)).map(describeLetter);
        print(json(), { group: name, deadLetters: found }, () =>
          found.length === 0
            ? `${name}: no dead letters`
            : found.map((l) => `${l.id}  ${l.aggregateId} v${l.version}  ${l.handler}  ${l.error.name}: ${l.error.message}  (${l.policy}, ${l.failedAt})`).join('\n'),
        );
      });
    });
  letters
    .command('replay')
    .description('hand a dead letter\'s event to the handler that failed once more (needs --app)')
    .argument('<group>')
    .argument('<id>')
    .requiredOption('--app <module>', appHelp)
    .action(async (name: string, id: string, options: { app: string }) => {
      await withSubscriptions(configOf(), [name], options.app, async (subscriptions) => {
        await subscriptions.replayDeadLetter(name, id);
        print(json(), { group: name, id, replayed: true }, () => `${name}: dead letter ${id} replayed and removed`);
      });
    });
  letters
    .command('discard')
    .argument('<group>')
    .argument('<id>')
    .option('--app <module>', appHelp)
    .action(async (name: string, id: string, options: { app?: string }) => {
      await withSubscriptions(configOf(), [name], options.app, async (subscriptions) => {
        await subscriptions.discardDeadLetter(name, id);
        print(json(), { group: name, id, discarded: true }, () => `${name}: dead letter ${id} discarded`);
      });
    });

  program
    .command('ensure')
    .description('create the database and the events, aggregates and leases containers where missing')
    .option('--indexing-policy', "apply the library's indexing policy to existing events and aggregates containers too")
    .action(async (options: { indexingPolicy?: boolean }) => {
      await withClient(configOf(), async (client, cfg) => {
        const database = await ensureDatabase(client, cfg.databaseId);
        await ensureContainers(database, cfg.eventsContainerId, cfg.aggregatesContainerId, { applyIndexingPolicy: options.indexingPolicy === true });
        await database.containers.createIfNotExists({ id: cfg.leasesContainerId, partitionKey: { paths: [LEASES_PARTITION_KEY_PATH] } });
        const done = {
          database: cfg.databaseId,
          containers: [cfg.eventsContainerId, cfg.aggregatesContainerId, cfg.leasesContainerId],
          indexingPolicyApplied: options.indexingPolicy === true,
        };
        const policy = done.indexingPolicyApplied ? ', indexing policy applied' : '';
        print(json(), done, () => `database ${done.database}: containers ${done.containers.join(', ')} present${policy}`);
      });
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    code = failure(err, json(), io, config);
  }
  return code;
}

const appHelp =
  'an ES module file exporting the application\'s Nest module, as `file.js` (its default or AppModule export) or ' +
  '`file.js#Name`; the CLI runs it as one more instance, its subscriptions stopped, to reach its subscribers\' handlers';

function failure(err: unknown, json: boolean, io: CliIo, config: CliConfig | undefined): number {
  if (err instanceof CommanderError) {
    // Help and version are printed by commander itself and are no failure.
    return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? EXIT.ok : EXIT.usage;
  }
  const code =
    err instanceof CliUsageError
      ? EXIT.usage
      : err instanceof NotFoundError || err instanceof UnknownSubscriberError || err instanceof UnknownDeadLetterError || statusOf(err) === 404
        ? EXIT.notFound
        : err instanceof DeadLetterReplayError
          ? EXIT.replayFailed
          : EXIT.failed;
  let message = messageOf(err).split('\n')[0];
  // Belt and braces: a key quoted by a message is never printed.
  if (config?.key) message = message.split(config.key).join('***');
  const name = err instanceof Error ? err.name : 'Error';
  io.stderr(json ? `${JSON.stringify({ error: { name, message }, exitCode: code })}\n` : `error: ${message}\n`);
  return code;
}

interface GroupView {
  name: string;
  state: string;
  reason?: string;
  stoppedBy?: string;
  estimatedPending: number;
  behindMs: number;
  owners: string[];
  leases: Array<{ range: string; owner: string | null; estimatedPending: number }>;
  parkedAggregates: string[];
  deadLetters: number;
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new CliUsageError(`${name} must be a positive integer`);
  return n;
}

function startFrom(value: string): StartFrom {
  if (value === 'beginning' || value === 'now') return value;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new CliUsageError('--from must be beginning, now or an ISO date');
  return date;
}

function describeLetter(letter: DeadLetter) {
  return {
    id: letter.id,
    aggregateId: letter.aggregateId,
    version: letter.version,
    handler: letter.handler,
    error: letter.error,
    attempts: letter.attempts,
    policy: letter.policy,
    failedAt: letter.failedAt.toISOString(),
    instanceId: letter.instanceId,
  };
}

function container(client: CosmosClient, config: CliConfig, id: string): Container {
  return client.database(config.databaseId).container(id);
}

async function withClient(config: CliConfig, fn: (client: CosmosClient, config: CliConfig) => Promise<void>): Promise<void> {
  const client = new CosmosClient({
    endpoint: config.endpoint,
    ...(config.key !== undefined ? { key: config.key } : { aadCredentials: await defaultAzureCredential() }),
  });
  try {
    await fn(client, config);
  } finally {
    client.dispose();
  }
}

@Module({})
class CliModule {}

/**
 * The subscriptions admin API (`Subscriptions`) of a Nest context: the app's own (`--app`), or one of the
 * CLI with a stand-in subscriber per group named, which reads the group's leases and letters but handles
 * no event (so it cannot replay, and does not rebuild: those need the app's subscribers).
 */
async function withSubscriptions(
  config: CliConfig,
  names: readonly string[],
  app: string | undefined,
  fn: (subscriptions: Subscriptions) => Promise<void>,
): Promise<void> {
  const { NestFactory } = await import('@nestjs/core');
  const root = app ? await loadAppModule(app) : cliModule(config, names);
  let context: INestApplicationContext;
  try {
    context = await NestFactory.createApplicationContext(root, { logger: false, abortOnError: false });
  } catch (err) {
    throw new Error(`starting the ${app ? 'application' : 'CLI'} context failed: ${messageOf(err)}`, { cause: err });
  }
  try {
    const subscriptions = context.get<Subscriptions>(SUBSCRIPTIONS);
    // The app's instance would read and handle events: it only serves the command here.
    if (app) await subscriptions.stop();
    await fn(subscriptions);
  } finally {
    await context.close();
  }
}

function cliModule(config: CliConfig, names: readonly string[]): DynamicModule {
  const standIns = names.map((name, i) => standInSubscriber(name, i));
  return {
    module: CliModule,
    imports: [
      CosmosModule.forRoot({
        endpoint: config.endpoint,
        ...(config.key !== undefined ? { key: config.key } : {}),
        databaseId: config.databaseId,
        eventsContainerId: config.eventsContainerId,
        aggregatesContainerId: config.aggregatesContainerId,
        ensure: false,
      }),
      EventStoreModule.forRoot(),
      SubscriptionsModule.forRoot({
        leasesContainerId: config.leasesContainerId,
        ensure: false,
        autoStart: false,
        instanceId: `cli@${hostname().replace(/[^A-Za-z0-9._:@-]/g, '-')}`,
      }),
      SubscriptionsModule.forFeature(standIns),
    ],
  };
}

function standInSubscriber(name: string, index: number): Type<unknown> {
  const StandIn = class {
    handle(): never {
      throw new Error('the CLI handles no event: pass --app to reach the application\'s handlers');
    }
  };
  Object.defineProperty(StandIn, 'name', { value: `CliStandIn${index}` });
  const descriptor = Object.getOwnPropertyDescriptor(StandIn.prototype, 'handle')!;
  OnStoredEvent()(StandIn.prototype, 'handle', descriptor as TypedPropertyDescriptor<never>);
  Subscriber({ name })(StandIn);
  return StandIn;
}

async function loadAppModule(spec: string): Promise<Type<unknown> | DynamicModule> {
  const hash = spec.lastIndexOf('#');
  const file = hash > 0 ? spec.slice(0, hash) : spec;
  const exported = hash > 0 ? spec.slice(hash + 1) : undefined;
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>;
  } catch (err) {
    throw new CliUsageError(`--app ${file} could not be loaded: ${messageOf(err)}`);
  }
  const found = exported ? loaded[exported] : (loaded.default ?? loaded.AppModule);
  if (typeof found !== 'function' && (typeof found !== 'object' || found === null)) {
    throw new CliUsageError(`--app ${file} exports no ${exported ?? 'default or AppModule'} Nest module`);
  }
  return found as Type<unknown> | DynamicModule;
}
