/** Tests run against the real PostgreSQL and RabbitMQ; each file isolates itself by database and queue prefix. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': 'ts-jest' },
  // Above the longest chain of waits in a test that sets no timeout of its own (75 s: two
  // process starts and several waitFor calls), so a failing test stops at its own waitFor,
  // which names what it waited for, and not at jest's anonymous timeout.
  testTimeout: 90000,
  maxWorkers: 2,
  // A worker runs file after file, and what each leaves in the heap (compiled modules, buffers
  // of the hostile suites) adds up: one reached V8's 4 GB limit in the last file of a full run.
  // A worker past this much after a file is replaced by a fresh one.
  workerIdleMemoryLimit: '1GB',
  // Drops the databases and control-plane folders that interrupted runs left behind.
  globalSetup: '<rootDir>/test/support/leftovers.ts',
};
