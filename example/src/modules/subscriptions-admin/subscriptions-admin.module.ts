import { Module } from '@nestjs/common';
import { SubscriptionsAdminController } from './subscriptions-admin.controller.js';

/** HTTP admin actions on the subscriptions (resume, dead letters); needs a global `SubscriptionsModule.forRoot`. */
@Module({ controllers: [SubscriptionsAdminController] })
export class SubscriptionsAdminModule {}
