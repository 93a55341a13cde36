import { createHash, timingSafeEqual } from 'node:crypto';
import {
  ForbiddenException,
  Inject,
  Injectable,
  SetMetadata,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Reflector } from '@nestjs/core';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { appConfig } from '../../config/app.config.js';
import { cosmosConfig } from '../../config/cosmos.config.js';

const ADMIN_ENDPOINT = Symbol('ADMIN_ENDPOINT');

/** Marks a route (or a controller's routes) as an admin action, which `AdminTokenGuard` lets through only with the token. */
export const AdminEndpoint = () => SetMetadata(ADMIN_ENDPOINT, true);

/**
 * The service's guard of `@AdminEndpoint()` routes (an `APP_GUARD`; other routes pass): with `ADMIN_TOKEN`
 * set, a request needs `Authorization: Bearer <token>` (401 otherwise); without it they are open on the
 * embedded server, whose data is the developer's own and in memory, and refused (403) on a configured account.
 */
@Injectable()
export class AdminTokenGuard implements CanActivate {
  private readonly digest?: Buffer;
  private readonly embedded: boolean;

  constructor(
    private readonly reflector: Reflector,
    @Inject(appConfig.KEY) app: ConfigType<typeof appConfig>,
    @Inject(cosmosConfig.KEY) cosmos: ConfigType<typeof cosmosConfig>,
  ) {
    if (app.adminToken !== undefined) this.digest = sha256(app.adminToken);
    this.embedded = cosmos.endpoint === undefined;
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.reflector.getAllAndOverride<boolean>(ADMIN_ENDPOINT, [context.getHandler(), context.getClass()])) return true;
    const http = context.switchToHttp();
    if (!this.digest) {
      if (this.embedded) return true;
      throw new ForbiddenException('admin endpoints are off on a configured Cosmos DB account: set ADMIN_TOKEN to turn them on');
    }
    const given = /^Bearer +(\S+)\s*$/i.exec(http.getRequest<IncomingMessage>().headers.authorization ?? '')?.[1];
    // Digests of equal length, compared in constant time: the answer's timing tells nothing of the token.
    if (given !== undefined && timingSafeEqual(sha256(given), this.digest)) return true;
    http.getResponse<ServerResponse>().setHeader('WWW-Authenticate', 'Bearer');
    throw new UnauthorizedException('admin endpoints need Authorization: Bearer <ADMIN_TOKEN>');
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
