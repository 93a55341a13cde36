export { SubscriptionsAdminModule } from './subscriptions-admin.module.js';
export { SubscriptionsAdminController, type DeadLetterDto } from './subscriptions-admin.controller.js';
