/** Jest in native ESM mode; TypeScript through SWC with legacy decorators and their metadata (NestJS DI). */
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/src', '<rootDir>/example', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
    // The example service imports the library by its package name, as a consumer does.
    '^nest-cosmos-eventstore$': '<rootDir>/src/index.ts',
    '^nest-cosmos-eventstore/testing$': '<rootDir>/src/testing.ts',
    '^nest-cosmos-eventstore/protosource$': '<rootDir>/src/protosource.ts',
    '^nest-cosmos-eventstore/config$': '<rootDir>/src/config.ts',
    '^nest-cosmos-eventstore/cqrs$': '<rootDir>/src/cqrs.ts',
  },
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: {
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true },
          target: 'es2022',
        },
        module: { type: 'es6' },
      },
    ],
  },
  testTimeout: 30000,
  // The whole suite runs in one process on a 2-core machine, where a handle one test leaves open keeps Jest
  // from exiting after the last and CI waits for ever. The one `--detectOpenHandles` found (a unit test's
  // lease check that never ended, its renewal timer with it) is fixed; this stays as the guard against the next.
  forceExit: true,
};
