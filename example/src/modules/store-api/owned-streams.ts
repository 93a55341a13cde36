import { ForbiddenException, Injectable } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { AggregateRepository, InjectSnapshotTailStore, SNAPSHOT_EVENT_TYPE, type SnapshotTailStore, type StreamLifecycleStore } from 'nest-cosmos-eventstore';
import { ProtosourceRepository, protosourceNamespace } from 'nest-cosmos-eventstore/protosource';

/** A namespace of streams and the aggregate that owns it. */
export interface OwnedNamespace {
  owner: string;
  prefix: string;
  /**
   * Whether the stream's record at `version` is one of the owner's snapshots: the only record a repository's stream
   * may start with after a truncation. False for an event; true when the record is not there (nothing to cut).
   */
  snapshotAt(streamId: string, version: number): Promise<boolean>;
}

/**
 * The stream namespaces the application's repositories own: `<type>/` for every aggregate type registered
 * with `EventSourcingModule.forFeature`, `<package_>#` for every protosource-mode aggregate, found among the
 * providers rather than listed by hand, so a new aggregate is protected the day it is registered. The raw
 * event API must not write there: a record that is not one of the type's events makes the aggregate
 * unreadable, and a well-formed one (an `OrderShipped` by "mallory") would change what every command sees
 * behind the commands' rules.
 */
@Injectable()
export class OwnedStreams {
  private namespaces?: readonly OwnedNamespace[];

  constructor(
    private readonly discovery: DiscoveryService,
    @InjectSnapshotTailStore() private readonly store: SnapshotTailStore,
  ) {}

  /** The namespaces of the repositories the application registered, sorted by prefix. */
  owned(): readonly OwnedNamespace[] {
    // Read on first use: every provider is built by the time a request arrives.
    this.namespaces ??= [
      ...new Map(
        this.discovery
          .getProviders()
          .map((wrapper) => namespaceOf(wrapper.instance as unknown, this.store as Partial<StreamLifecycleStore>))
          .filter((namespace) => namespace !== undefined)
          .map((namespace) => [namespace.prefix, namespace] as const),
      ).values(),
    ].sort((a, b) => a.prefix.localeCompare(b.prefix));
    return this.namespaces;
  }

  /** The namespace `streamId` is in, when a repository owns it. */
  ownerOf(streamId: string): OwnedNamespace | undefined {
    return this.owned().find(({ prefix }) => streamId.startsWith(prefix));
  }

  /** Throws 403 (JSON, naming `field`) when `streamId` is in a repository's namespace. */
  refuseOwned(field: string, streamId: string): void {
    const owned = this.owned().find(({ prefix }) => streamId.startsWith(prefix));
    if (owned === undefined) return;
    throw new ForbiddenException({
      statusCode: 403,
      error: 'Forbidden',
      message:
        `streams under "${owned.prefix}" belong to the ${owned.owner} aggregate: change them through its commands, not raw records ` +
        `(raw writes may use any id outside ${this.owned().map(({ prefix }) => `"${prefix}"`).join(', ')})`,
      field,
    });
  }
}

function namespaceOf(instance: unknown, store: Partial<StreamLifecycleStore>): OwnedNamespace | undefined {
  if (instance instanceof AggregateRepository) {
    return {
      owner: instance.type,
      prefix: `${instance.type}/`,
      // JSON repositories store the record type beside the data: no decoding needed.
      snapshotAt: async (streamId, version) => {
        if (typeof store.loadRange !== 'function') return false;
        const [record] = (await store.loadRange(streamId, { fromVersion: version, toVersion: version })).records;
        return record === undefined || record.type === SNAPSHOT_EVENT_TYPE;
      },
    };
  }
  if (instance instanceof ProtosourceRepository) {
    const { schema, snapshot } = instance.definition;
    const prefix = `${protosourceNamespace(schema)}#`;
    return {
      owner: schema.typeName,
      prefix,
      // protosource's records carry no type: the stream is decoded (an admin's rare request).
      snapshotAt: async (streamId, version) => {
        const record = (await instance.events(streamId.slice(prefix.length))).find((event) => Number(event.version) === version);
        return record === undefined || (snapshot !== undefined && record.$typeName === snapshot.schema.typeName);
      },
    };
  }
  return undefined;
}
