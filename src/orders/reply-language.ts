import type { Sql } from '../db/client';
import type { QueueMessage } from '../queue/message';
import { detectLanguage, REPLY_LANGUAGES, type ReplyLanguage } from './detect-language';
import type { ReplyCatalogues } from './replies';

export interface ReplyTextOptions {
  catalogues: ReplyCatalogues;
  /** REPLY_LANGUAGE: for a customer who has never written a word that tells. */
  defaultLanguage: ReplyLanguage;
}

/**
 * The language to answer in: the message's own, remembered for the customer; otherwise the
 * one they last wrote in ("2 pizzas" after "hola"), otherwise the shop's default.
 */
export async function chooseReplyLanguage(tx: Sql, message: QueueMessage, text: string | undefined, fallback: ReplyLanguage): Promise<ReplyLanguage> {
  const detected = text === undefined ? null : detectLanguage(text);
  if (detected) {
    await tx`
      INSERT INTO customer_languages (webhook_source, sender_key, language) VALUES (${message.source}, ${message.senderKey}, ${detected})
      ON CONFLICT (webhook_source, sender_key) DO UPDATE SET language = EXCLUDED.language, updated_at = now()`;
    return detected;
  }
  // Used, it is written again once a day: cleanup forgets the language of silent customers only.
  const [row] = await tx<{ language: string }[]>`
    WITH touched AS (
      UPDATE customer_languages SET updated_at = now()
      WHERE webhook_source = ${message.source} AND sender_key = ${message.senderKey} AND updated_at < now() - interval '1 day'
      RETURNING language)
    SELECT language FROM touched
    UNION ALL
    SELECT language FROM customer_languages WHERE webhook_source = ${message.source} AND sender_key = ${message.senderKey}
      AND NOT EXISTS (SELECT 1 FROM touched)`;
  return (REPLY_LANGUAGES as readonly string[]).includes(row?.language ?? '') ? (row!.language as ReplyLanguage) : fallback;
}
