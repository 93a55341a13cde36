import { Scope, type OnModuleInit, type Type } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper.js';
import { SubscriberDefinitionError } from './subscriptions.errors.js';

/**
 * Checks at start-up (with Nest's `DiscoveryService`) that every `@Subscriber` class is a singleton. A
 * subscriber that depends, directly or through other providers, on a request-scoped or transient provider
 * would be instantiated per request, which a change feed reader never makes (a transient subscriber with
 * static dependencies is fine: its registration gets one instance): Nest would never create it, and
 * its consumer group would silently not exist. That is a start-up error naming the class and the dependency.
 */
export class SubscriberScopeCheck implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly subscribers: ReadonlyArray<Type<unknown>>,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const type = wrapper.metatype as Type<unknown> | undefined;
      if (typeof type !== 'function' || wrapper.token !== type || !this.subscribers.includes(type)) continue;
      if (wrapper.scope === Scope.REQUEST) {
        throw new SubscriberDefinitionError(`subscriber ${type.name} cannot be a singleton: it is request-scoped; a subscriber must be a singleton`);
      }
      if (!wrapper.isDependencyTreeStatic()) {
        const culprit = scopedDependency(wrapper, new Set());
        throw new SubscriberDefinitionError(
          `subscriber ${type.name} cannot be a singleton: it depends on ${culprit ?? 'a request-scoped or transient provider'}; ` +
            'a subscriber must be a singleton (inject ModuleRef and resolve scoped providers per event instead)',
        );
      }
    }
  }
}

/** The first request-scoped or transient provider `wrapper` depends on, named with its scope. */
function scopedDependency(wrapper: InstanceWrapper, seen: Set<InstanceWrapper>): string | undefined {
  seen.add(wrapper);
  const dependencies = [...(wrapper.getCtorMetadata() ?? []), ...(wrapper.getPropertiesMetadata() ?? []).map((p) => p.wrapper)];
  for (const dependency of dependencies) {
    if (!dependency || seen.has(dependency)) continue;
    if (dependency.scope === Scope.REQUEST) return `${dependency.name} (request-scoped)`;
    if (dependency.scope === Scope.TRANSIENT && !dependency.isDependencyTreeStatic()) return `${dependency.name} (transient)`;
    const deeper = scopedDependency(dependency, seen);
    if (deeper) return `${dependency.name}, which depends on ${deeper}`;
  }
  return undefined;
}
