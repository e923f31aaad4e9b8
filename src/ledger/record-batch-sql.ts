/**
 * Records a whole batch of webhook items in one call, so a batch costs one round trip and one
 * commit. The work itself is in migrations/034_message_ids_in_arrival_order.sql (031's, with a
 * batch's message ids handed out in arrival order; 031 is 024's, which
 * also finds an erased reply by the messages a resend replaced; 024 is 020's, whose receipts of
 * an erased customer's replies keep no number or payload; 020 is 009's with each receipt's
 * reply named): messages first (a row this batch inserted is new, so
 * concurrent copies count once), then rate limits, outbox rows and status receipts, every
 * lock taken in one sorted order.
 *
 * $1 items (json array), $2 limits per source ({"whatsapp": {"max", "window"}}), $3 outbox lease seconds.
 */
export const RECORD_BATCH_SQL = 'SELECT ord, outcome, row_id, queued_count, advanced_count FROM wagate_record_batch($1, $2, $3)';
