import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readMigrations } from '../../src/db/migrate';

describe('the checksums of migrations', () => {
  it('are the same for a checkout that wrote CRLF line ends, so an image built from it migrates a database others migrated', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wagate-crlf-'));
    try {
      cpSync(path.join(__dirname, '../../migrations'), dir, { recursive: true });
      for (const file of readdirSync(dir).filter((name) => name.endsWith('.sql'))) {
        writeFileSync(path.join(dir, file), readFileSync(path.join(dir, file), 'utf8').replace(/\r?\n/g, '\r\n'));
      }
      const crlf = readMigrations(dir);
      expect(crlf.some((migration) => migration.sql.includes('\r\n'))).toBe(true);
      expect(crlf.map(({ name, checksum }) => ({ name, checksum }))).toEqual(readMigrations().map(({ name, checksum }) => ({ name, checksum })));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
