import { describeServer } from '../../src/db/postgres-errors';
import { redactUrl } from '../../src/telemetry/redact-url';

describe('URLs in log lines and messages', () => {
  it('masks the password of a URL with a host', () => {
    expect(redactUrl('amqp://wagate:S3cretPass@rabbitmq:5672/shop')).toBe('amqp://wagate:***@rabbitmq:5672/shop');
    expect(redactUrl('http://collector:4318')).toBe('http://collector:4318/');
  });

  it('prints nothing of a URL whose password the parser does not see (the scheme left out)', () => {
    // Parsed as scheme "wagate", path "S3cretPass@rabbitmq:5672": no password field to mask.
    expect(redactUrl('wagate:S3cretPass@rabbitmq:5672')).toBe('(url without a host)');
    expect(redactUrl('not a url')).toBe('(unparseable url)');
  });

  it('names a database server without its password, and nothing of a URL without a host', () => {
    expect(describeServer('postgres://shop:S3cretPass@db:6432/orders')).toBe('shop@db:6432/orders');
    expect(describeServer('wagate:S3cretPass@db:5432/wagate')).toBe('from DATABASE_URL');
  });
});
