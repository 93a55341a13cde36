/**
 * Bytes per stored event document against the payload: each document is read back as the server stores it
 * (JSON, its system properties `_rid _self _etag _ts _attachments` included) and weighed, without and with an
 * expiry. The baseline is the payload itself; base64 alone makes it 4/3.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { CosmosEventStore } from '../src/index.js';
import { freshContainers, startServerProcess } from './embedded-process.js';
import { printTable, ratio } from './support.js';

const SIZES = [0, 10, 100, 1024, 10 * 1024, 100 * 1024, 1024 * 1024];

export default async function (): Promise<void> {
  const server = await startServerProcess();
  const { client, events } = await freshContainers(server, 'bytes');
  try {
    const aggregateId = `order-${randomUUID()}`;
    const plain = new CosmosEventStore(events);
    const expiring = new CosmosEventStore(events, { eventTtlSeconds: 30 * 86_400 });
    const weigh = async (version: number) => {
      const { resource } = await events.item(String(version), aggregateId).read<Record<string, unknown>>();
      if (!resource) throw new Error(`document ${version} not found`);
      const ours = Object.fromEntries(Object.entries(resource).filter(([field]) => !field.startsWith('_')));
      return { stored: Buffer.byteLength(JSON.stringify(resource)), ours: Buffer.byteLength(JSON.stringify(ours)) };
    };
    const rows: Array<Array<string | number>> = [
      ['payload (bytes)', 'our fields (bytes)', 'as stored (bytes)', 'as stored, with ttl (bytes)', 'stored - payload', 'stored / payload'],
    ];
    let version = 0;
    for (const size of SIZES) {
      const data = randomBytes(size);
      await plain.save(aggregateId, [{ version: ++version, data }]);
      const without = await weigh(version);
      await expiring.save(aggregateId, [{ version: ++version, data }]);
      const withTtl = await weigh(version);
      rows.push([
        size,
        without.ours,
        without.stored,
        withTtl.stored,
        without.stored - size,
        size === 0 ? 'n/a' : ratio(without.stored, size),
      ]);
    }
    console.log(`aggregate id of ${aggregateId.length} characters; document read back from the server and serialized as JSON`);
    printTable(rows);
  } finally {
    client.dispose();
    await server.close();
  }
}
