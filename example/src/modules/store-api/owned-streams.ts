import { ForbiddenException, Injectable } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { Repository } from 'nest-cosmos-eventstore';

/**
 * The stream namespaces the application's repositories own: `<type>/` for every aggregate type registered
 * with `EventSourcingModule.forFeature`, found among the providers rather than listed by hand, so a new
 * aggregate is protected the day it is registered. The raw event API must not write there: a record that is
 * not one of the type's events makes the aggregate unreadable, and a well-formed one (an `OrderShipped` by
 * "mallory") would change what every command sees behind the commands' rules.
 */
@Injectable()
export class OwnedStreams {
  private types?: readonly string[];

  constructor(private readonly discovery: DiscoveryService) {}

  /** The aggregate types whose repositories the application registered, sorted. */
  aggregateTypes(): readonly string[] {
    // Read on first use: every provider is built by the time a request arrives.
    this.types ??= [
      ...new Set(
        this.discovery
          .getProviders()
          .map((wrapper) => wrapper.instance as unknown)
          .filter((instance): instance is Repository<never> => instance instanceof Repository)
          .map((repository) => repository.type),
      ),
    ].sort();
    return this.types;
  }

  /** The type whose namespace `streamId` is in, if any. */
  ownerOf(streamId: string): string | undefined {
    return this.aggregateTypes().find((type) => streamId.startsWith(`${type}/`));
  }

  /** Throws 403 (JSON, naming `field`) when `streamId` is in a repository's namespace. */
  refuseOwned(field: string, streamId: string): void {
    const owner = this.ownerOf(streamId);
    if (owner === undefined) return;
    throw new ForbiddenException({
      statusCode: 403,
      error: 'Forbidden',
      message:
        `streams under "${owner}/" belong to the ${owner} aggregate: change them through its commands, not raw records ` +
        `(raw writes may use any id outside ${this.aggregateTypes().map((t) => `"${t}/"`).join(', ')})`,
      field,
    });
  }
}
