import { ForbiddenException, Injectable } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { AggregateRepository } from 'nest-cosmos-eventstore';
import { ProtosourceRepository, protosourceNamespace } from 'nest-cosmos-eventstore/protosource';

/** A namespace of streams and the aggregate that owns it. */
export interface OwnedNamespace {
  owner: string;
  prefix: string;
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

  constructor(private readonly discovery: DiscoveryService) {}

  /** The namespaces of the repositories the application registered, sorted by prefix. */
  owned(): readonly OwnedNamespace[] {
    // Read on first use: every provider is built by the time a request arrives.
    this.namespaces ??= [
      ...new Map(
        this.discovery
          .getProviders()
          .map((wrapper) => namespaceOf(wrapper.instance as unknown))
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

function namespaceOf(instance: unknown): OwnedNamespace | undefined {
  if (instance instanceof AggregateRepository) return { owner: instance.type, prefix: `${instance.type}/` };
  if (instance instanceof ProtosourceRepository) {
    const { schema } = instance.definition;
    return { owner: schema.typeName, prefix: `${protosourceNamespace(schema)}#` };
  }
  return undefined;
}
