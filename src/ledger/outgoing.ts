import type { Publication } from '../queue/publisher';

/** A row on its way to the broker: attempts is the claim it goes out under (0: its owner's). */
export interface Outgoing {
  id: string;
  attempts: number;
  sender: string;
  publication: Publication;
  /**
   * For an owner's row, whether it may still be written once the batches ahead have: by
   * default only while no row waits for a sweep; a row published while some do, only while
   * its sender has none handed to the sweep since the read that found it free to go.
   */
  mayWrite?: () => boolean;
}

/** What became of a row: confirmed, not (it waits for a sweep), or recorded dead, too large for the broker. */
export type Outcome = boolean | 'dead';
