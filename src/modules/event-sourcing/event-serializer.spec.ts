import { gzipSync } from 'node:zlib';
import { EventStoreError, ValidationError } from '../event-store/index.js';
import { DEFAULT_EVENT_COMPRESS_THRESHOLD, JsonEventSerializer, type EventEnvelope } from './event-serializer.js';

const envelope = (payload: unknown): EventEnvelope => ({ type: 'T', aggregateId: 'a', version: 1, at: 1_700_000_000_000_000, actor: 'me', payload });
const isGzip = (data: Uint8Array) => data[0] === 0x1f && data[1] === 0x8b;

describe('JsonEventSerializer', () => {
  it('writes plain JSON below the threshold and gzip at or above it, reading both back', () => {
    const serializer = new JsonEventSerializer(100);
    const small = envelope('x');
    const plain = serializer.serialize(small);
    expect(isGzip(plain)).toBe(false);
    expect(JSON.parse(Buffer.from(plain).toString())).toEqual(small);
    const exactly = envelope('y'.repeat(100 - Buffer.byteLength(JSON.stringify(envelope('')))));
    expect(Buffer.byteLength(JSON.stringify(exactly))).toBe(100);
    expect(isGzip(serializer.serialize(exactly))).toBe(true);
    expect(serializer.deserialize(serializer.serialize(exactly))).toEqual(exactly);
  });

  it('decompresses by the magic bytes, whatever threshold wrote the record', () => {
    const written = gzipSync(Buffer.from(JSON.stringify(envelope({ n: 1 }))));
    expect(new JsonEventSerializer(1_000_000).deserialize(written)).toEqual(envelope({ n: 1 }));
  });

  it(`compresses from ${DEFAULT_EVENT_COMPRESS_THRESHOLD} bytes by default`, () => {
    const serializer = new JsonEventSerializer();
    expect(isGzip(serializer.serialize(envelope('z'.repeat(DEFAULT_EVENT_COMPRESS_THRESHOLD))))).toBe(true);
    expect(isGzip(serializer.serialize(envelope('z'.repeat(DEFAULT_EVENT_COMPRESS_THRESHOLD / 2))))).toBe(false);
  });

  it('refuses stored bytes that are not an envelope with an EventStoreError, and a bad threshold with a ValidationError', () => {
    const serializer = new JsonEventSerializer();
    expect(() => serializer.deserialize(Buffer.from('not json'))).toThrow(EventStoreError);
    expect(() => serializer.deserialize(Buffer.from('{"type":"T"}'))).toThrow(/envelope/);
    expect(() => new JsonEventSerializer(-1)).toThrow(ValidationError);
  });
});
