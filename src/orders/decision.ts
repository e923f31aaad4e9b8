import type { Candidate, Product } from './match';

export interface OrderLine {
  product: Product;
  quantity: number;
}

export interface Problem {
  phrase: string;
  reason: 'unknown' | 'ambiguous' | 'quantity' | 'currency' | 'cancel' | 'too_long' | 'question' | 'price' | 'note';
  candidates: Candidate[];
}

/** What a message asks for, decided from its content and the catalog alone. */
export type Decision =
  /** note: what the customer wrote with a cart, for the shop (a note that asks something is a clarification instead). */
  | { kind: 'order'; lines: OrderLine[]; total: string; currency: string; note?: string }
  | { kind: 'cancel' }
  | { kind: 'order_status' }
  | { kind: 'menu' }
  | { kind: 'clarify'; problems: Problem[] }
  | { kind: 'unsupported'; type: string }
  | { kind: 'no_reply'; type: string };

/** Every decision but no_reply: the ones that record a reply. */
export type AnsweredDecision = Exclude<Decision, { kind: 'no_reply' }>;
