import type { Decision, OrderLine } from './decision';
import { fromCents, toCents } from './money';

export const MAX_LINE_QUANTITY = 99;

/** An order of these lines, or a clarification when they are priced in more than one currency. */
export function buildOrder(lines: OrderLine[]): Decision {
  const currency = lines[0]!.product.currency;
  const foreign = lines.find((line) => line.product.currency !== currency);
  if (foreign) return { kind: 'clarify', problems: [{ phrase: foreign.product.name, reason: 'currency', candidates: [] }] };
  const cents = lines.reduce((sum, line) => sum + toCents(line.product.price) * line.quantity, 0);
  return { kind: 'order', lines, total: fromCents(cents), currency };
}

export function validQuantity(quantity: number): boolean {
  return Number.isInteger(quantity) && quantity >= 1 && quantity <= MAX_LINE_QUANTITY;
}
