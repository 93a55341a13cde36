import { fromBinary, fromJsonString, toBinary, toJsonString, type DescMessage, type Message, type Registry } from '@bufbuild/protobuf';
import { anyPack, anyUnpack, AnySchema, type Any } from '@bufbuild/protobuf/wkt';
import { compressAtOrAbove, decompressIfGzipped, ValidationError } from '../event-store/index.js';
import { ProtosourceDecodeError } from './protosource.errors.js';

/** protosource's `DefaultCompressThreshold`: event payloads of 300 bytes or more are gzip-compressed. */
export const PROTOSOURCE_COMPRESS_THRESHOLD = 300;

/** `binary`: `proto.Marshal` of the `Any` (protosource's `protobinaryserializer`); `json`: protojson of it (`protojsonserializer`). */
export type ProtosourceEncoding = 'binary' | 'json';

export interface ProtosourceEventCodecOptions {
  /** The event (and snapshot) message types the codec may meet; `createRegistry(file_…)` of your generated code. */
  registry: Registry;
  /** What `encode` writes. Default `binary`; `decode` reads both, whatever this says. */
  encoding?: ProtosourceEncoding;
  /** Gzip payloads of at least this many bytes; 0 turns compression off. Default 300, as protosource. */
  compressThreshold?: number;
}

/**
 * Event payloads exactly as protosource writes them in the events container's `d`: the event packed into a
 * `google.protobuf.Any` (type URL `type.googleapis.com/<full message name>`), marshalled, and gzip-compressed
 * from 300 bytes. Reading detects gzip by its magic bytes and protojson by its opening brace (a marshalled
 * `Any` starts with the tag of field 1, `0x0a`), so it reads what either Go serializer wrote.
 *
 * @example
 * const codec = new ProtosourceEventCodec({ registry: createRegistry(file_example_order_order) });
 * const data = codec.encode(CreatedSchema, create(CreatedSchema, { id: 'o-1', version: 1n, at: 1n, actor: 'a' }));
 * const event = codec.decode(data); // a Created, typed by its $typeName
 */
export class ProtosourceEventCodec {
  readonly registry: Registry;
  private readonly encoding: ProtosourceEncoding;
  private readonly compressThreshold: number;

  constructor(options: ProtosourceEventCodecOptions) {
    if (!options?.registry) throw new ValidationError('registry', 'is required: a Registry of the event message types');
    const { encoding = 'binary', compressThreshold = PROTOSOURCE_COMPRESS_THRESHOLD } = options;
    if (encoding !== 'binary' && encoding !== 'json') throw new ValidationError('encoding', `must be 'binary' or 'json', got ${String(encoding)}`);
    if (!Number.isSafeInteger(compressThreshold) || compressThreshold < 0) {
      throw new ValidationError('compressThreshold', 'must be a non-negative integer number of bytes (0: never compress)');
    }
    this.registry = options.registry;
    this.encoding = encoding;
    this.compressThreshold = compressThreshold;
  }

  /** The stored bytes of an event. */
  encode<D extends DescMessage>(schema: D, message: Message): Uint8Array {
    if (!this.registry.getMessage(schema.typeName)) {
      throw new ValidationError('event', `type ${schema.typeName} is not in the codec's registry`);
    }
    const packed = anyPack(schema, message as never);
    const bytes =
      this.encoding === 'binary'
        ? toBinary(AnySchema, packed)
        : Buffer.from(toJsonString(AnySchema, packed, { registry: this.registry }), 'utf8');
    return compressAtOrAbove(bytes, this.compressThreshold);
  }

  /** The event a stored payload holds, as its generated type (tell them apart by `$typeName`). */
  decode(data: Uint8Array): Message {
    let bytes: Uint8Array;
    try {
      bytes = decompressIfGzipped(data);
    } catch (err) {
      throw new ProtosourceDecodeError(`event payload is not valid gzip: ${(err as Error).message}`, { cause: err });
    }
    let packed: Any;
    try {
      packed =
        bytes[0] === 0x7b // '{'
          ? fromJsonString(AnySchema, Buffer.from(bytes).toString('utf8'), { registry: this.registry })
          : fromBinary(AnySchema, bytes);
    } catch (err) {
      throw new ProtosourceDecodeError(`event payload is not a google.protobuf.Any: ${(err as Error).message}`, { cause: err });
    }
    let message: Message | undefined;
    try {
      message = anyUnpack(packed, this.registry);
    } catch (err) {
      throw new ProtosourceDecodeError(`event ${packed.typeUrl} does not decode: ${(err as Error).message}`, { cause: err });
    }
    if (!message) throw new ProtosourceDecodeError(`event type ${JSON.stringify(packed.typeUrl)} is not in the codec's registry`);
    return message;
  }
}

/**
 * What a protobuf subscriber's handlers get as `event`: the event's full message name as `type` (so
 * `@OnStoredEvent({ types: ['example.app.order.v1.Created'] })` selects by it) and the decoded message.
 */
export interface ProtosourceSubscribedMessage<M extends Message = Message> {
  type: string;
  message: M;
}

/**
 * The subscriptions' `serializer` for streams written in protosource mode (ours or Go's): decodes each
 * event's `Any` into its generated message type.
 *
 * @example
 * @Subscriber({ name: 'order-mail', serializer: new ProtosourceEventDeserializer({ registry }) })
 * class OrderMail {
 *   @OnStoredEvent({ aggregateIdPrefix: 'example_app_order_v1#', types: [CreatedSchema.typeName] })
 *   async created({ event }: SubscribedEvent<ProtosourceSubscribedMessage<Created>>) { … event!.message.customerId … }
 * }
 */
export class ProtosourceEventDeserializer {
  readonly codec: ProtosourceEventCodec;

  constructor(codec: ProtosourceEventCodec | ProtosourceEventCodecOptions) {
    this.codec = codec instanceof ProtosourceEventCodec ? codec : new ProtosourceEventCodec(codec);
  }

  deserialize(data: Uint8Array): ProtosourceSubscribedMessage {
    const message = this.codec.decode(data);
    return { type: message.$typeName, message };
  }

  /**
   * A protosource snapshot: a `<package>.Snapshot` event written by `snapshot@system`. The runtime keeps
   * these from every handler, as it keeps ours, unless a handler's filter asks for `snapshots: true`.
   */
  isSnapshot(event: unknown): boolean {
    const { type, message } = event as ProtosourceSubscribedMessage;
    return type.endsWith('.Snapshot') && (message as { actor?: unknown }).actor === SNAPSHOT_ACTOR;
  }
}

/** The actor protosource writes on snapshot events. */
export const SNAPSHOT_ACTOR = 'snapshot@system';
