/**
 * Records a whole batch of webhook items in one call, so a batch costs one round trip and one
 * commit. The work itself, and why it is a function, is in migrations/004_record_batch_function.sql:
 * advisory locks per (source, message id) in sorted order, then rate limits, messages, outbox
 * rows and status receipts in one statement.
 *
 * $1 items (json array), $2 limits per source ({"whatsapp": {"max", "window"}}), $3 outbox lease seconds.
 */
export const RECORD_BATCH_SQL = 'SELECT ord, outcome, row_id, queued_count, advanced_count FROM wagate_record_batch($1, $2, $3)';
