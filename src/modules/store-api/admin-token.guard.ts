import { createHash, timingSafeEqual } from 'node:crypto';
import { ForbiddenException, Inject, Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { appConfig } from '../../config/app.config.js';
import { cosmosConfig } from '../../config/cosmos.config.js';

/**
 * Guards the service's `/admin` endpoints: with `ADMIN_TOKEN` set, a request needs
 * `Authorization: Bearer <token>` (401 otherwise); without it they are open on the embedded server, whose
 * data is the developer's own and in memory, and refused (403) on a configured account.
 */
@Injectable()
export class AdminTokenGuard implements CanActivate {
  private readonly digest?: Buffer;
  private readonly embedded: boolean;

  constructor(
    @Inject(appConfig.KEY) app: ConfigType<typeof appConfig>,
    @Inject(cosmosConfig.KEY) cosmos: ConfigType<typeof cosmosConfig>,
  ) {
    if (app.adminToken !== undefined) this.digest = sha256(app.adminToken);
    this.embedded = cosmos.endpoint === undefined;
  }

  canActivate(context: ExecutionContext): boolean {
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
