import type { Problem, OrderLine } from './decide';
import type { Product } from './match';

/** Reply texts. Kept together so tone and wording stay consistent across intents. */
export const replies = {
  orderConfirmation(orderId: string, name: string | null, lines: OrderLine[], total: string, currency: string): string {
    const items = lines.map((line) => `${line.quantity} × ${line.product.name} (${line.product.currency} ${line.product.price})`);
    return `Thanks${name ? ` ${name}` : ''}! Order #${orderId}: ${items.join(', ')}. Total ${currency} ${total}. Not what you meant? Reply CANCEL to cancel it, then send your order again.`;
  },
  clarification(problems: Problem[]): string {
    const parts = problems.map((problem) => {
      if (problem.reason === 'quantity') return `"${problem.phrase}": please order between 1 and 99`;
      if (problem.reason === 'currency') return `"${problem.phrase}" is priced in another currency; please order it separately`;
      const names = problem.candidates.slice(0, 3).map((c) => c.name);
      if (names.length === 0) return `we couldn't find "${problem.phrase}"`;
      return `"${problem.phrase}": did you mean ${names.join(' or ')}?`;
    });
    return `Sorry, we couldn't place your order yet: ${parts.join('; ')}. Reply MENU to see everything we offer.`;
  },
  cancelled(orderId: string): string {
    return `Your order #${orderId} is cancelled.`;
  },
  nothingToCancel(): string {
    return 'You have no open order to cancel.';
  },
  orderStatus(orderId: string, status: string, total: string, currency: string): string {
    return `Your order #${orderId} (${currency} ${total}) is ${status}.`;
  },
  noOrders(): string {
    return "We don't have an order from you yet. Reply MENU to see what we offer.";
  },
  menu(products: Product[]): string {
    if (products.length === 0) return 'Our menu is empty right now. Please try again later.';
    const lines = products.map((p) => `• ${p.name}: ${p.currency} ${p.price}`);
    return `Our menu:\n${lines.join('\n')}\nOrder by writing, for example, "2 ${products[0]!.name}".`;
  },
  unsupported(): string {
    return 'Sorry, we can only read text messages and catalog orders. Reply MENU to see what we offer.';
  },
};
