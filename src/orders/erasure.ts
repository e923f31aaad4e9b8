/**
 * What `wagate erase` writes in place of a customer's number, and the status it gives their
 * unfinished messages. The worker checks for it before it writes or sends anything.
 */
export const ERASED = 'erased';
