import { metaSignature, metaTextEnvelope } from '../src/providers/samples';

/** Senders are reused round-robin, so per-sender work (rate-limit rows, shards) is realistic. */
const SENDER_COUNT = 1000;

export interface SignedMessage {
  id: string;
  body: string;
  signature: string;
}

export interface MessageSource {
  next(): SignedMessage;
  /** Messages handed out so far, across every phase of the run. */
  issued(): number;
}

/**
 * One source per run: every call yields a new message id, so each request the durable path
 * sees is a new genuine message (a repeated id would be a cheap duplicate and flatter it).
 * Bodies are built and signed on demand rather than from a pool, which would either run out
 * or repeat ids.
 */
export function createMessageSource(runId: string, appSecret: string): MessageSource {
  let count = 0;
  return {
    next() {
      const n = count++;
      const id = `wamid.bench.${runId}.${n}`;
      const from = String(15550000000 + (n % SENDER_COUNT));
      const body = JSON.stringify(metaTextEnvelope({ id, from, text: '2x margherita, one coke' }));
      return { id, body, signature: metaSignature(appSecret, body) };
    },
    issued: () => count,
  };
}
