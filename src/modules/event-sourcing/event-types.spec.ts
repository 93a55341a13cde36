import { describe, expect, it } from '@jest/globals';
import { EventStoreError } from '../event-store/index.js';
import { eventTypeOf } from './aggregate-metadata.js';
import { JsonEventSerializer, type EventEnvelope } from './event-serializer.js';
import { DomainEvent, eventSchemaVersion, EventSchemaError, eventTypeInfo, upcastEnvelope } from './event-types.js';

@DomainEvent('spec.Renamed', { version: 2, aliases: ['spec.OldName'], upcasters: { 1: ({ n, ...rest }) => ({ ...rest, count: n }) } })
class Renamed {
  static readonly type = 'ignored: the decorator wins';
  constructor(readonly count: number) {}
}

class Plain {}

const envelope = (type: string, payload: unknown, schemaVersion?: number): EventEnvelope => ({
  type,
  aggregateId: 'a',
  version: 1,
  at: 1,
  actor: 'me',
  payload,
  ...(schemaVersion === undefined ? {} : { schemaVersion }),
});

describe('@DomainEvent', () => {
  it('names the stored type and version; undecorated classes keep static type or the class name at version 1', () => {
    expect(eventTypeOf(Renamed)).toBe('spec.Renamed');
    expect(eventTypeOf(new Renamed(1))).toBe('spec.Renamed');
    expect(eventSchemaVersion('spec.Renamed')).toBe(2);
    expect(eventSchemaVersion('spec.OldName')).toBe(2);
    expect(eventTypeInfo(Renamed)).toMatchObject({ type: 'spec.Renamed', version: 2, aliases: ['spec.OldName'] });
    expect(eventTypeOf(Plain)).toBe('Plain');
    expect(eventSchemaVersion('Plain')).toBe(1);
    // A subclass is another event type: it does not inherit the decorator's name.
    class Sub extends Renamed {}
    expect(eventTypeOf(Sub)).toBe('Sub');
  });

  it.each([
    ['an empty name', () => DomainEvent('')],
    ['a $ name (the library\'s own)', () => DomainEvent('$snapshot')],
    ['version 0', () => DomainEvent('spec.X', { version: 0 })],
    ['a fractional version', () => DomainEvent('spec.X', { version: 1.5 })],
    ['an upcaster from the current version', () => DomainEvent('spec.X', { version: 2, upcasters: { 2: (p) => p } })],
    ['an upcaster from version 0', () => DomainEvent('spec.X', { version: 2, upcasters: { 0: (p) => p } })],
    ['an alias equal to the name', () => DomainEvent('spec.X', { aliases: ['spec.X'] })],
  ])('refuses %s', (_what, declare) => {
    expect(declare).toThrow(EventStoreError);
  });

  it('refuses a name or alias another class already declared', () => {
    expect(() => DomainEvent('spec.Renamed')(class Other {})).toThrow(/declared by two classes \(Renamed and Other\)/);
    expect(() => DomainEvent('spec.New', { aliases: ['spec.OldName'] })(class Other {})).toThrow(/"spec.OldName"/);
  });
});

describe('upcastEnvelope and JsonEventSerializer', () => {
  it('takes an alias and an older version to the current class; current and unknown types pass as they are', () => {
    expect(upcastEnvelope(envelope('spec.OldName', { n: 3, x: 1 }))).toEqual(envelope('spec.Renamed', { x: 1, count: 3 }, 2));
    const current = envelope('spec.Renamed', { count: 3 }, 2);
    expect(upcastEnvelope(current)).toBe(current);
    const unknown = envelope('Whatever', { a: 1 });
    expect(upcastEnvelope(unknown)).toBe(unknown);
  });

  it('is what subscribers get through the shared serializer; deserializeStored gives the bytes as stored', () => {
    const serializer = new JsonEventSerializer();
    const bytes = serializer.serialize(envelope('spec.OldName', { n: 5 }));
    expect(serializer.deserialize(bytes)).toMatchObject({ type: 'spec.Renamed', schemaVersion: 2, payload: { count: 5 } });
    expect(serializer.deserializeStored(bytes)).toEqual(envelope('spec.OldName', { n: 5 }));
  });

  it('refuses a newer version than the class, and an upcaster that returns no object', () => {
    expect(() => upcastEnvelope(envelope('spec.Renamed', {}, 3))).toThrow(EventSchemaError);
    @DomainEvent('spec.Broken', { version: 2, upcasters: { 1: () => null as unknown as Record<string, unknown> } })
    class Broken {}
    expect(eventTypeOf(Broken)).toBe('spec.Broken');
    expect(() => upcastEnvelope(envelope('spec.Broken', {}))).toThrow(/"spec.Broken" stored at schema version 1 cannot be read as version 2/);
  });

  it('refuses envelopes whose metadata fields have the wrong types', () => {
    const serializer = new JsonEventSerializer();
    for (const bad of [{ eventId: 1 }, { correlationId: null }, { headers: { a: 1 } }, { headers: [] }, { schemaVersion: 0 }, { schemaVersion: '2' }]) {
      expect(() => serializer.deserialize(Buffer.from(JSON.stringify({ ...envelope('T', {}), ...bad })))).toThrow(/envelope/);
    }
  });
});
