/**
 * What `wagate erase` writes in place of a customer's number, and the status it gives their
 * unfinished messages. The worker checks for it before it writes or sends anything.
 */
export const ERASED = 'erased';

/** A reply's last_error once its customer was erased before it was sent: never the provider's text, which may quote the number. */
export const NOT_SENT_ERASED = 'not sent: the customer was erased';
