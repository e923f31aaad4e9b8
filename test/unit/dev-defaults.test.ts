import { withDevDefaults } from '../../src/commands/dev';
import { loadConfig } from '../../src/config';

describe('wagate dev', () => {
  it('listens on loopback unless HOST says otherwise, while ingest alone keeps listening on every interface', () => {
    expect(loadConfig(withDevDefaults({})).HOST).toBe('127.0.0.1');
    expect(loadConfig(withDevDefaults({ HOST: '0.0.0.0' })).HOST).toBe('0.0.0.0');
    // Unset: every address of both families.
    expect(loadConfig({}).HOST).toBeUndefined();
  });

  it('takes an empty HOST or NODE_ENV for unset, as every other setting', () => {
    // `HOST=${HOST}` in a compose file: dev listened on every interface, and ran as production.
    const config = loadConfig(withDevDefaults({ HOST: '', NODE_ENV: '' }));
    expect([config.HOST, config.NODE_ENV]).toEqual(['127.0.0.1', 'development']);
  });
});
