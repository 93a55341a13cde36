/*
 * The protobuf event codec against payloads built here from protosource's facts: proto.Marshal of a
 * google.protobuf.Any (type URL type.googleapis.com/<full name>), gzip from 300 bytes detected by its magic
 * bytes (serializers/protobinaryserializer, compress.go), and the protojson form (protojsonserializer).
 */
import { create, createRegistry } from '@bufbuild/protobuf';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ProtosourceDecodeError, ProtosourceEventCodec, ProtosourceEventDeserializer } from '../../src/protosource.js';
import {
  CreatedSchema,
  file_example_order_order,
  ItemAddedSchema,
  type Created,
  type ItemAdded,
} from '../../example/src/modules/protosource-orders/gen/example-order/order_pb.js';
import { anyOf, eventHead, message } from './wire.js';

const registry = createRegistry(file_example_order_order);
const AT = 1_700_000_000_123_456n;

/** Created { id, version, at, actor, customer_id = 5, customer_name = 6 } as Go marshals it, inside its Any. */
function goCreated(customerName: string): Uint8Array {
  return anyOf('example.app.order.v1.Created', message(...eventHead('o-1', 1, AT, 'alice'), [5, 'c-1'], [6, customerName]));
}

describe('ProtosourceEventCodec (binary)', () => {
  const codec = new ProtosourceEventCodec({ registry });

  it("decodes Go's uncompressed Any into the typed event, field for field", () => {
    const event = codec.decode(goCreated('Ann')) as Created;
    expect(event.$typeName).toBe('example.app.order.v1.Created');
    expect({ id: event.id, version: event.version, at: event.at, actor: event.actor, customerId: event.customerId, customerName: event.customerName }).toEqual({
      id: 'o-1',
      version: 1n,
      at: AT,
      actor: 'alice',
      customerId: 'c-1',
      customerName: 'Ann',
    });
  });

  it("decodes Go's gzip-compressed payload, told by its magic bytes", () => {
    const long = 'n'.repeat(400);
    const event = codec.decode(gzipSync(goCreated(long))) as Created;
    expect(event.customerName).toBe(long);
  });

  it('decodes a nested message field (ItemAdded.item = 5)', () => {
    const item = message([1, 'sku-1'], [2, 'Book'], [3, 1250], [4, 2]);
    const event = codec.decode(anyOf('example.app.order.v1.ItemAdded', message(...eventHead('o-1', 2, AT, 'bob'), [5, item]))) as ItemAdded;
    expect(event.item).toMatchObject({ itemId: 'sku-1', description: 'Book', priceCents: 1250n, quantity: 2 });
  });

  it('writes the very bytes Go writes: raw under 300 bytes, gzip of them from 300', () => {
    const small = create(CreatedSchema, { id: 'o-1', version: 1n, at: AT, actor: 'alice', customerId: 'c-1', customerName: 'Ann' });
    expect(Buffer.from(codec.encode(CreatedSchema, small))).toEqual(Buffer.from(goCreated('Ann')));

    const long = 'n'.repeat(400);
    const big = create(CreatedSchema, { id: 'o-1', version: 1n, at: AT, actor: 'alice', customerId: 'c-1', customerName: long });
    const stored = codec.encode(CreatedSchema, big);
    expect([stored[0], stored[1]]).toEqual([0x1f, 0x8b]);
    expect(Buffer.from(gunzipSync(stored))).toEqual(Buffer.from(goCreated(long)));
  });

  it('compresses at exactly 300 bytes and not at 299; threshold 0 never compresses', () => {
    const sized = (n: number) => {
      // Grow customer_name until the marshalled Any is n bytes.
      for (let len = 0; ; len++) if (goCreated('x'.repeat(len)).length === n) return create(CreatedSchema, { id: 'o-1', version: 1n, at: AT, actor: 'alice', customerId: 'c-1', customerName: 'x'.repeat(len) });
    };
    expect(codec.encode(CreatedSchema, sized(299))[0]).toBe(0x0a);
    expect(codec.encode(CreatedSchema, sized(300))[0]).toBe(0x1f);
    expect(new ProtosourceEventCodec({ registry, compressThreshold: 0 }).encode(CreatedSchema, sized(300))[0]).toBe(0x0a);
  });

  it('refuses with ProtosourceDecodeError what Go would refuse: an unknown type, bytes that are no Any, broken gzip', () => {
    expect(() => codec.decode(anyOf('example.app.order.v1.Nope', message([1, 'x'])))).toThrow(ProtosourceDecodeError);
    expect(() => codec.decode(Uint8Array.from([0xff, 0xff, 0xff]))).toThrow(ProtosourceDecodeError);
    expect(() => codec.decode(Uint8Array.from([0x1f, 0x8b, 0x00]))).toThrow(ProtosourceDecodeError);
  });

  it('refuses a bad option or an event type outside its registry', () => {
    expect(() => new ProtosourceEventCodec({ registry, compressThreshold: -1 })).toThrow(/compressThreshold/);
    expect(() => new ProtosourceEventCodec({ registry: createRegistry(), encoding: 'binary' }).encode(CreatedSchema, create(CreatedSchema))).toThrow(/registry/);
  });
});

describe('ProtosourceEventCodec (protojson)', () => {
  // protojson of an Any: "@type" and the event's fields by JSON name, int64 as strings.
  const goJson = `{"@type":"type.googleapis.com/example.app.order.v1.Created", "id":"o-1","version":"1","at":"${AT}","actor":"alice","customerId":"c-1","customerName":"Ann"}`;

  it("decodes Go's protojson payload (whatever its spacing)", () => {
    const codec = new ProtosourceEventCodec({ registry });
    const event = codec.decode(Buffer.from(goJson)) as Created;
    expect(event).toMatchObject({ id: 'o-1', version: 1n, at: AT, actor: 'alice', customerId: 'c-1', customerName: 'Ann' });
  });

  it('writes protojson that reads as the same JSON object', () => {
    const codec = new ProtosourceEventCodec({ registry, encoding: 'json' });
    const data = codec.encode(CreatedSchema, create(CreatedSchema, { id: 'o-1', version: 1n, at: AT, actor: 'alice', customerId: 'c-1', customerName: 'Ann' }));
    expect(JSON.parse(Buffer.from(data).toString('utf8'))).toEqual(JSON.parse(goJson));
  });
});

describe('example.app.order.v1 on the wire', () => {
  it('keeps the field numbers of protosource’s order_v1.proto (a few checked by hand)', () => {
    const fields = (schema: { fields: ReadonlyArray<{ name: string; number: number }> }) => Object.fromEntries(schema.fields.map((f) => [f.name, f.number]));
    expect(fields(CreatedSchema)).toEqual({ id: 1, version: 2, at: 3, actor: 4, customer_id: 5, customer_name: 6 });
    expect(fields(ItemAddedSchema)).toEqual({ id: 1, version: 2, at: 3, actor: 4, item: 5 });
  });
});

describe('ProtosourceEventDeserializer', () => {
  const deserializer = new ProtosourceEventDeserializer({ registry });

  it('tells protosource snapshots (a <package>.Snapshot by snapshot@system) from events, so no handler gets them unasked', () => {
    const snapshot = deserializer.deserialize(anyOf('example.app.order.v1.Snapshot', message(...eventHead('o-1', 51, AT, 'snapshot@system'))));
    expect(snapshot.type).toBe('example.app.order.v1.Snapshot');
    expect(deserializer.isSnapshot(snapshot)).toBe(true);
    expect(deserializer.isSnapshot(deserializer.deserialize(goCreated('Ann')))).toBe(false);
    // A Snapshot message some actor wrote is not one protosource took.
    expect(deserializer.isSnapshot(deserializer.deserialize(anyOf('example.app.order.v1.Snapshot', message(...eventHead('o-1', 2, AT, 'alice')))))).toBe(false);
  });
});
