import { DEV_DEFAULTS } from '../../src/commands/dev';
import { loadConfig } from '../../src/config';

describe('wagate dev', () => {
  it('listens on loopback unless HOST says otherwise, while ingest alone keeps listening on every interface', () => {
    // main.ts loads dev's configuration as { ...DEV_DEFAULTS, ...process.env }.
    expect(loadConfig({ ...DEV_DEFAULTS }).HOST).toBe('127.0.0.1');
    expect(loadConfig({ ...DEV_DEFAULTS, HOST: '0.0.0.0' }).HOST).toBe('0.0.0.0');
    // Unset: every address of both families.
    expect(loadConfig({}).HOST).toBeUndefined();
  });
});
