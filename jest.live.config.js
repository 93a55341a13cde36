/**
 * `npm run test:live`: the suites whose fixtures follow `test/support/live.ts` (the contract, repository,
 * subscription and fault suites), one file at a time, against the account of COSMOS_TEST_ENDPOINT and
 * COSMOS_TEST_KEY (or keyless), or the emulator. Left out: the suites that start the embedded server
 * themselves, and those proving its own patches (splits on demand, the proxy's own behaviour).
 */
import base from './jest.config.js';

export default {
  ...base,
  roots: ['<rootDir>/test'],
  testMatch: [
    '<rootDir>/test/contract/cosmos.contract.e2e-spec.ts',
    '<rootDir>/test/contract/documents.e2e-spec.ts',
    '<rootDir>/test/event-sourcing/cosmos.repository.e2e-spec.ts',
    '<rootDir>/test/properties/*.e2e-spec.ts',
    '<rootDir>/test/protosource/{repository,store-documents,store-faults}.e2e-spec.ts',
    '<rootDir>/test/subscriptions/{delivery,failures,leases,order-stats-instances,rebuild}.e2e-spec.ts',
    '<rootDir>/test/faults/{cut-answers,error-classes,opaque-faults,order-stats-faults,read-faults,read-your-writes,save-faults}.e2e-spec.ts',
    '<rootDir>/test/telemetry/*.e2e-spec.ts',
  ],
  // A real account answers in milliseconds, not microseconds, and throttles.
  testTimeout: 180_000,
};
