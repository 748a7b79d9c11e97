/** @type {import('jest').Config} */
const config = {
  testEnvironment: 'node',
  // Transpile only: the type-check is `tsc --noEmit`, run once for the whole tree before the tests.
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testMatch: ['<rootDir>/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  testTimeout: 60000,
  // Integration tests each run their own services and brokers, and several assert that the orchestrator reads no
  // delay of its own as a gateway's silence. One worker: with two, a test's services shared the two cores with another
  // test's Kafka cluster, and on a slower machine the timing tests (broker-outage, broker-kill, process-kill) failed
  // for CPU starvation, on this session's code and on the code before it alike (docs/testing.md).
  maxWorkers: 1,
};
module.exports = config;
