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
  // Integration tests each run their own services; two workers match the two cores.
  maxWorkers: 2,
};
module.exports = config;
