import { metaSignature, metaTextEnvelope } from '../src/webhooks/samples';

/** Senders are reused round-robin, so per-sender work (rate-limit rows, shards) is realistic. */
const DEFAULT_SENDER_COUNT = 1000;
const ORDER_TEXT = '2x margherita, one coke';

export interface SignedMessage {
  id: string;
  from: string;
  text: string;
  body: string;
  signature: string;
}

export interface MessageSource {
  next(): SignedMessage;
  /** Messages handed out so far, across every phase of the run. */
  issued(): number;
}

export interface MessageSourceOptions {
  /** Distinct senders, used in turn. */
  senders?: number;
  /** The text of the n-th message; every message asks for the same order by default. */
  text?: (n: number) => string;
}

/**
 * One source per run: every call yields a new message id, so each request the durable path
 * sees is a new genuine message (a repeated id would be a cheap duplicate and flatter it).
 * Bodies are built and signed on demand rather than from a pool, which would either run out
 * or repeat ids.
 */
export function createMessageSource(runId: string, appSecret: string, options: MessageSourceOptions = {}): MessageSource {
  const senders = options.senders ?? DEFAULT_SENDER_COUNT;
  const textOf = options.text ?? (() => ORDER_TEXT);
  let count = 0;
  return {
    next() {
      const n = count++;
      const id = `wamid.bench.${runId}.${n}`;
      const from = String(15550000000 + (n % senders));
      const text = textOf(n);
      const body = JSON.stringify(metaTextEnvelope({ id, from, text }));
      return { id, from, text, body, signature: metaSignature(appSecret, body) };
    },
    issued: () => count,
  };
}
