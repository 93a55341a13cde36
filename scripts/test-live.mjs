#!/usr/bin/env node
// `npm run test:live`: the live suites (jest.live.config.js) against COSMOS_TEST_ENDPOINT, or a note and exit
// 0 when it is not set. Arguments after `--` go to Jest (e.g. a file name to run one suite).
import { spawnSync } from 'node:child_process';

const endpoint = process.env.COSMOS_TEST_ENDPOINT?.trim();
if (!endpoint) {
  console.log(
    'test:live: COSMOS_TEST_ENDPOINT is not set, so no suite ran. Set it (and COSMOS_TEST_KEY, or sign in for ' +
      'keyless access) to run the contract, repository, subscription and fault suites against that account or ' +
      'the emulator; see docs/development.md.',
  );
  process.exit(0);
}
// The endpoint's host only: never the key.
console.log(`test:live: against ${new URL(endpoint).host}, ${process.env.COSMOS_TEST_KEY ? 'with a key' : 'keyless'}`);
const result = spawnSync(
  process.execPath,
  [
    '--experimental-vm-modules',
    '--no-warnings=ExperimentalWarning',
    'node_modules/jest/bin/jest.js',
    '--config',
    'jest.live.config.js',
    '--runInBand',
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
