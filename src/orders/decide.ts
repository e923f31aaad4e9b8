import type { Sql } from '../db/client';
import type { QueueMessage } from '../queue/message';
import { isAcknowledgement, isGreeting } from './acknowledgement';
import { liveCatalog, type CatalogReader } from './catalog-cache';
import { decideText } from './decide-text';
import { parseOrderText } from './parse-text';
import { exceedsTextCap, MAX_ITEMS } from './parse-text-limits';
import { certainCandidate, findProducts, isRetiredSku, type MatchOptions, type Product } from './match';
import { toCents } from './money';
import type { Decision, OrderLine, Problem } from './decision';
import { buildOrder, validQuantity } from './order-lines';

export { MAX_LINE_QUANTITY } from './order-lines';

/**
 * Meta's notices that are not something the customer asked: a reaction (or its removal) to
 * one of the shop's messages, and a change of number or user id. Answering a 👍 on an order
 * confirmation with "we can only read text" would start a conversation nobody wanted.
 */
const UNANSWERED_META_TYPES = new Set(['reaction', 'system']);

export async function decide(sql: Sql, message: QueueMessage, options: MatchOptions, catalog: CatalogReader = liveCatalog(sql)): Promise<Decision> {
  const content = (message.content ?? {}) as Record<string, any>;
  // A message written in a WhatsApp group the business is in (Meta's Groups API marks it with the
  // group's id): chatter among its members, not an order to the shop. Answered, each message would
  // have made an order or a private reply to whoever wrote it, mostly outside their 24-hour window.
  // The ingest records such a message finished (webhooks/meta.ts); this is for copies it queued
  // before it did.
  if (message.source === 'whatsapp' && content.group_id !== undefined) return { kind: 'no_reply', type: 'group' };
  if (message.source === 'whatsapp' && UNANSWERED_META_TYPES.has(message.type)) return { kind: 'no_reply', type: message.type };
  // A customer opening the chat for the first time: Meta expects the business to greet them, and the menu is the greeting.
  if (message.source === 'whatsapp' && message.type === 'request_welcome') return { kind: 'menu' };
  if (message.source === 'whatsapp' && message.type === 'order') return decideCart(sql, content.order?.product_items ?? [], content.order?.text, catalog);
  const choice = replyChoice(message, content);
  if (choice) {
    const products = await findProducts(sql, [choice.id]);
    const product = products.get(choice.id);
    if (product) return buildOrder([{ product, quantity: 1 }]);
    // A row for a product switched off since the list was sent: its title read as text could
    // order another product of a like name ("Margherita" → "Pizza Margherita"), not the one tapped.
    if (await isRetiredSku(sql, choice.id)) return { kind: 'clarify', problems: [{ phrase: choice.title || choice.id, reason: 'unknown', candidates: [] }] };
    if (choice.title) return decideTappedTitle(sql, choice.title, options, catalog);
  }
  const text = textOf(message, content);
  if (text === undefined) return { kind: 'unsupported', type: message.type };
  return decideText(sql, text, options, catalog);
}

/**
 * The title of a tapped row or button whose id is no sku (a template's quick reply, a shop's own
 * list): an intent ("Menu", "Cancel my order", "Yes") reads as it would typed, but a product
 * only when the title is its name or one of its aliases. Interactive replies are matched
 * exactly: read as free text, "Margherita" would order a "Pizza Margherita" that the row never
 * named, so the customer is asked instead.
 */
async function decideTappedTitle(sql: Sql, title: string, options: MatchOptions, catalog: CatalogReader): Promise<Decision> {
  const decision = await decideText(sql, title, options, catalog);
  if (decision.kind !== 'order') return decision;
  // The title as the parser reads it, without the emoji or punctuation a list's row may carry ("Margherita 🍕").
  const { items } = parseOrderText(title, { keepTogether: await catalog.terms() });
  if (items.length === 1 && items[0]!.quantity === 1) {
    const [verdict] = await catalog.match([items[0]!.phrase], options);
    if (verdict?.verdict === 'matched' && verdict.product.named) return buildOrder([{ product: verdict.product, quantity: 1 }]);
  }
  return { kind: 'clarify', problems: [{ phrase: title, reason: 'ambiguous', candidates: decision.lines.map((line) => certainCandidate(line.product)) }] };
}

interface CartItem {
  product_retailer_id: string;
  quantity: number | string;
  item_price?: number | string;
  currency?: string;
}

/**
 * Native catalog carts name products by sku (product_retailer_id): matched exactly. The cart
 * shows the price of Meta's copy of the catalog; where it differs from wagate's (one updated,
 * the other not yet), no order is placed at a price the customer did not see.
 */
async function decideCart(sql: Sql, items: CartItem[], note: unknown, catalog: CatalogReader): Promise<Decision> {
  // As for free text: a confirmation of more lines than that could not hold them all and the total.
  if (new Set(items.map((item) => item.product_retailer_id)).size > MAX_ITEMS) return { kind: 'clarify', problems: [{ phrase: '', reason: 'too_long', candidates: [] }] };
  const products = await findProducts(sql, items.map((item) => item.product_retailer_id));
  const problems: Problem[] = [];
  const noteText = typeof note === 'string' ? note : '';
  // A note too long to read is neither kept nor quoted back: the customer is asked to shorten it.
  if (exceedsTextCap(noteText)) problems.push({ phrase: '', reason: 'too_long', candidates: [] });
  else if (noteText.trim() !== '' && noteAsksSomething(noteText, await catalog.terms())) problems.push({ phrase: noteText.trim(), reason: 'note', candidates: [] });
  const lines: OrderLine[] = [];
  for (const item of items) {
    const product = products.get(item.product_retailer_id);
    const quantity = Number(item.quantity);
    if (!product) problems.push({ phrase: item.product_retailer_id, reason: 'unknown', candidates: [] });
    else if (!validQuantity(quantity)) problems.push({ phrase: product.name, reason: 'quantity', candidates: [] });
    else if (!cartPriceAgrees(item, product)) problems.push({ phrase: product.name, reason: 'price', candidates: [certainCandidate(product)] });
    else lines.push({ product, quantity });
  }
  const merged = mergeRepeatedProducts(lines);
  problems.push(...merged.problems);
  if (problems.length > 0) return { kind: 'clarify', problems };
  const order = buildOrder(merged.lines);
  // The rest ("for delivery at 7", "thanks!") goes on the order for the shop to read.
  if (order.kind === 'order' && noteText.trim() !== '') return { ...order, note: noteText.trim() };
  return order;
}

/**
 * Meta's cart lists each product once. One that names a product twice (another client, a
 * payload built by hand) is one line of their sum, so that the per-product limit holds as it
 * does for free text, where a product named twice is asked about.
 */
function mergeRepeatedProducts(lines: OrderLine[]): { lines: OrderLine[]; problems: Problem[] } {
  const bySku = new Map<string, OrderLine>();
  for (const line of lines) {
    const earlier = bySku.get(line.product.sku);
    bySku.set(line.product.sku, earlier ? { ...earlier, quantity: earlier.quantity + line.quantity } : line);
  }
  const merged = [...bySku.values()];
  const problems = merged.filter((line) => !validQuantity(line.quantity)).map((line): Problem => ({ phrase: line.product.name, reason: 'quantity', candidates: [] }));
  return { lines: merged, problems };
}

/**
 * A cart's note ("one without cheese", "sin cebolla", "extra sauce") changes the order, and the
 * order's lines cannot say it: placed as the cart shows, the customer gets what they asked not
 * to. A note that says nothing to the kitchen ("thanks!", "Hola!", "for delivery at 7") leaves the cart
 * as it is, and goes on the order as the shop's to read.
 */
function noteAsksSomething(note: string, catalogTerms: string[]): boolean {
  // A greeting alone reads as a menu request, which asks the kitchen for nothing.
  if (isAcknowledgement(note, catalogTerms) || isGreeting(note, catalogTerms)) return false;
  const parsed = parseOrderText(note, { keepTogether: catalogTerms });
  // A question beside a cart ("hay sin cebolla?", "is there a way to make it without onions")
  // reads as a menu request alone, and may well ask the kitchen for something: it is asked about too.
  return parsed.intent !== 'order' || parsed.items.length + parsed.excluded.length + parsed.unsure.length > 0;
}

/** A cart line without a price or currency (or one unreadable) agrees: there is nothing it showed to differ from. */
function cartPriceAgrees(item: CartItem, product: Product): boolean {
  if (item.currency !== undefined && item.currency.trim().toUpperCase() !== product.currency.toUpperCase()) return false;
  const shown = Number(item.item_price);
  if (item.item_price === undefined || item.item_price === '' || !Number.isFinite(shown)) return true;
  // Meta sends the price as a JSON number (9.5), read back as the shortest decimal that is that
  // number ("9.5", "0.125") and compared in cents, never as floats. A price with more decimals
  // than the catalog keeps (0.125 KWD against 0.13) differs: rounded to cents, it agreed.
  const decimal = String(shown);
  return /^\d+(\.\d{1,2})?$/.test(decimal) && toCents(decimal) === toCents(product.price);
}

/** A tapped button or list row: its id may be a sku; otherwise its title is read as text. */
function replyChoice(message: QueueMessage, content: Record<string, any>): { id: string; title?: string } | undefined {
  if (message.source === 'twilio') {
    const id = content.ButtonPayload ?? content.ListId;
    return typeof id === 'string' && id ? { id, title: content.ButtonText ?? content.ListTitle ?? content.Body } : undefined;
  }
  const reply = content.interactive?.button_reply ?? content.interactive?.list_reply;
  if (reply?.id) return { id: String(reply.id), title: reply.title };
  if (content.button?.payload) return { id: String(content.button.payload), title: content.button.text };
  return undefined;
}

export function textOf(message: QueueMessage, content: Record<string, any>): string | undefined {
  if (message.source === 'twilio') return message.type === 'text' && typeof content.Body === 'string' ? content.Body : undefined;
  if (message.type === 'text' && typeof content.text?.body === 'string') return content.text.body;
  if (message.type === 'button' && typeof content.button?.text === 'string') return content.button.text;
  return undefined;
}
