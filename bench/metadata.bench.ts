/**
 * What event metadata (eventId, correlationId, causationId, schemaVersion in each envelope) costs on the
 * append path: `AggregateRepository.apply` of commands emitting 1 and 10 events, with `JsonEventSerializer` as it is,
 * against the same repository whose serializer drops those fields (the envelope as it was before them). The
 * server runs in a child process; rounds are interleaved and medians taken.
 */
import { performance } from 'node:perf_hooks';
import {
  Aggregate,
  AggregateRoot,
  Command,
  CosmosEventStore,
  CosmosOpaqueStore,
  JsonEventSerializer,
  On,
  AggregateRepository,
  type EventEnvelope,
  type EventSerializer,
} from '../src/index.js';
import { freshContainers, startServerProcess } from './embedded-process.js';
import { printTable, ratio } from './support.js';

const ROUNDS = 9;
const COMMANDS = 40;

class Noted {
  constructor(readonly text: string) {}
}

@Aggregate({ type: 'Notebook' })
class Notebook extends AggregateRoot {
  notes = 0;
  @On(Noted) onNoted(): void {
    this.notes++;
  }
}

class Note extends Command<Notebook> {
  constructor(
    readonly aggregateId: string,
    readonly count: number,
    readonly lifecycle: 'create' | 'mutate',
  ) {
    super();
  }
  emit(): Noted[] {
    // About 100 bytes of payload per event, as bench/throughput.bench.ts.
    return Array.from({ length: this.count }, (_, i) => new Noted(`note ${i} `.padEnd(90, 'x')));
  }
}

/** `JsonEventSerializer` writing the envelope without the metadata fields: the baseline. */
class WithoutMetadata implements EventSerializer {
  private readonly json = new JsonEventSerializer();
  serialize(envelope: EventEnvelope): Uint8Array {
    const { eventId: _e, correlationId: _c, causationId: _k, headers: _h, schemaVersion: _s, ...bare } = envelope;
    return this.json.serialize(bare);
  }
  deserialize(data: Uint8Array): EventEnvelope {
    return this.json.deserialize(data);
  }
}

export default async function (): Promise<void> {
  const server = await startServerProcess();
  const { client, events, aggregates } = await freshContainers(server, 'metadata');
  try {
    const opaque = new CosmosOpaqueStore(aggregates);
    const store = new CosmosEventStore(events, { opaqueStore: opaque });
    let bytes = 0;
    const counting = (serializer: EventSerializer): EventSerializer => ({
      serialize: (envelope) => {
        const data = serializer.serialize(envelope);
        bytes += data.length;
        return data;
      },
      deserialize: (data) => serializer.deserialize(data),
    });
    const contenders: Array<[string, AggregateRepository<Notebook>]> = [
      ['without metadata (baseline)', new AggregateRepository(Notebook, { events: store, aggregates: store, opaque }, { serializer: counting(new WithoutMetadata()), logger: { warn: () => undefined } })],
      ['with metadata', new AggregateRepository(Notebook, { events: store, aggregates: store, opaque }, { serializer: counting(new JsonEventSerializer()), logger: { warn: () => undefined } })],
    ];
    const rows: (string | number)[][] = [['events per command', 'envelope', 'bytes per event', 'events/s (median)', 'vs baseline']];
    for (const size of [1, 10]) {
      const rates: number[][] = contenders.map(() => []);
      const perEvent: number[] = contenders.map(() => 0);
      for (let round = 0; round <= ROUNDS; round++) {
        for (let k = 0; k < contenders.length; k++) {
          const i = (round + k) % contenders.length;
          const [, repository] = contenders[i];
          const id = `n-${size}-${i}-${round}-${Math.random()}`;
          bytes = 0;
          const start = performance.now();
          for (let c = 0; c < COMMANDS; c++) await repository.apply(new Note(id, size, c === 0 ? 'create' : 'mutate'));
          const rate = (COMMANDS * size) / ((performance.now() - start) / 1000);
          perEvent[i] = Math.round(bytes / (COMMANDS * size));
          if (round > 0) rates[i].push(rate);
        }
      }
      const medians = rates.map((r) => r.sort((x, y) => x - y)[Math.floor(r.length / 2)]);
      contenders.forEach(([label], i) => rows.push([size, label, perEvent[i], medians[i].toFixed(0), ratio(medians[i], medians[0])]));
    }
    printTable(rows);
  } finally {
    client.dispose();
    await server.close();
  }
}
