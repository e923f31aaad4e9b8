import { amqpMessageId } from '../../src/queue/message';

describe('the AMQP message id', () => {
  it('is source:message_id while that fits AMQP\'s 255-byte short string', () => {
    const id = 'x'.repeat(255 - 'whatsapp:'.length);
    expect(amqpMessageId('whatsapp', id)).toBe(`whatsapp:${id}`);
    expect(amqpMessageId('twilio', 'SM123')).toBe('twilio:SM123');
  });

  it('names a longer id by its SHA-256, counting bytes, not characters', () => {
    const long = 'x'.repeat(256 - 'whatsapp:'.length);
    // 100 characters, 300 bytes in UTF-8.
    const wide = '€'.repeat(100);
    for (const id of [long, wide]) {
      const named = amqpMessageId('whatsapp', id);
      expect(named).toMatch(/^whatsapp:sha256:[0-9a-f]{64}$/);
      expect(Buffer.byteLength(named)).toBeLessThanOrEqual(255);
      expect(amqpMessageId('whatsapp', id)).toBe(named);
    }
    expect(amqpMessageId('whatsapp', long)).not.toBe(amqpMessageId('whatsapp', wide));
  });
});
