import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors';
import type { OrderLine, Problem } from './decision';
import { REPLY_LANGUAGES, type ReplyLanguage } from './detect-language';
import type { Product } from './match';
import { MAX_ITEMS, MAX_TEXT_CHARS } from './parse-text-limits';

/** The catalogues shipped with wagate; REPLY_TEXTS_DIR points at a shop's own copies instead. */
export const DEFAULT_REPLY_TEXTS_DIR = path.join(__dirname, '..', '..', 'reply-texts');

const TEXT_KEYS = [
  'thanks', 'thanksWithName', 'orderConfirmation', 'orderLine', 'clarification', 'problemQuantity', 'problemCurrency',
  'problemUnknown', 'problemSuggestion', 'suggestionHint', 'problemCancel', 'problemTooLong', 'problemsMore', 'problemQuestion', 'problemPrice', 'problemNote', 'or', 'cancelled', 'cancelNotOpen', 'cancelTooLate',
  'cancelEarlierUnanswered',
  'nothingToCancel', 'orderStatus', 'statusEarlierUnanswered', 'status_open', 'status_cancelled', 'status_fulfilled', 'noOrders', 'menuEmpty',
  'menu', 'unsupported',
] as const;
const catalogueSchema = z.object(Object.fromEntries(TEXT_KEYS.map((key) => [key, z.string().min(1)])) as Record<(typeof TEXT_KEYS)[number], z.ZodString>);
export type ReplyCatalogue = z.infer<typeof catalogueSchema>;
export type ReplyCatalogues = Record<ReplyLanguage, ReplyCatalogue>;

/**
 * Texts added after shops began keeping their own catalogues: a shop's copy written before them
 * takes wagate's own, in the same language, rather than stopping the worker at the upgrade.
 */
const LATER_KEYS = [
  'problemCancel', 'problemTooLong', 'problemsMore', 'problemQuestion', 'problemPrice', 'problemNote', 'cancelNotOpen', 'cancelTooLate', 'cancelEarlierUnanswered',
  'suggestionHint', 'statusEarlierUnanswered',
] as const;

function readCatalogueFile(dir: string, language: ReplyLanguage): Record<string, unknown> {
  const file = path.join(dir, `${language}.json`);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError(`REPLY_TEXTS_DIR: cannot read the ${language} reply texts at ${file}: ${(error as Error).message}`);
  }
}

/** Reads and checks every language's catalogue once, at start; a missing key names the file and the key. */
export function loadReplyCatalogues(dir: string = DEFAULT_REPLY_TEXTS_DIR): ReplyCatalogues {
  const entries = REPLY_LANGUAGES.map((language) => {
    const file = path.join(dir, `${language}.json`);
    const own = readCatalogueFile(dir, language);
    const shipped = dir === DEFAULT_REPLY_TEXTS_DIR ? {} : readCatalogueFile(DEFAULT_REPLY_TEXTS_DIR, language);
    const json = { ...Object.fromEntries(LATER_KEYS.map((key) => [key, shipped[key]])), ...own };
    const parsed = catalogueSchema.safeParse(json);
    if (!parsed.success) {
      const keys = parsed.error.issues.map((issue) => issue.path.join('.')).join(', ');
      throw new ConfigError(`REPLY_TEXTS_DIR: ${file} lacks or misspells the texts ${keys}`);
    }
    return [language, parsed.data] as const;
  });
  return Object.fromEntries(entries) as ReplyCatalogues;
}

function statusText(texts: ReplyCatalogue, status: string): string {
  return texts[`status_${status}` as keyof ReplyCatalogue] ?? status;
}

/** Twilio refuses a body over 1,600 characters (error 21617) and Meta one over 4,096: the lower limit serves both. */
export const MAX_REPLY_CHARS = 1600;
/** Problems a clarification writes out; the rest are only counted, so that it stays short enough to read. */
const LISTED_PROBLEMS = 5;
/** Longest customer phrase or product name quoted in a clarification, in UTF-16 units as providers count them. */
const QUOTED_CHARS = 60;

/** "{name}" placeholders; an unknown one stays as written, so a typo shows in the reply rather than vanishing. */
function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (whole, key: string) => (key in values ? String(values[key]) : whole));
}

/** Reply texts in one language. */
export function repliesIn(texts: ReplyCatalogue) {
  return {
    /** Every line, in MAX_REPLY_CHARS: the product names (and the customer's) shortened as far as it takes. */
    orderConfirmation(orderId: string, name: string | null, lines: OrderLine[], total: string, currency: string): string {
      return fitNames((nameChars) => {
        const items = lines.map((line) => fill(texts.orderLine, { ...line.product, quantity: line.quantity, name: shorten(line.product.name, nameChars) }));
        const thanks = name ? fill(texts.thanksWithName, { name: shorten(name, nameChars) }) : texts.thanks;
        return fill(texts.orderConfirmation, { thanks, orderId, items: items.join(', '), total, currency });
      });
    },
    /** At most MAX_REPLY_CHARS: the same problem once, LISTED_PROBLEMS of them written out, the rest counted. */
    clarification(problems: Problem[]): string {
      const sentences = [...new Set(problems.map((problem) => describeProblem(texts, problem)))];
      const suggestions = new Set(problems.filter(isSuggestion).map((problem) => describeProblem(texts, problem)));
      return fitClarification(texts, sentences, suggestions);
    },
    cancelled: (orderId: string) => fill(texts.cancelled, { orderId }),
    nothingToCancel: () => texts.nothingToCancel,
    /** The newest order is cancelled or fulfilled already: an older one is not reached for. */
    cancelNotOpen: (orderId: string, status: string) => fill(texts.cancelNotOpen, { orderId, status: statusText(texts, status) }),
    cancelTooLate: (orderId: string) => fill(texts.cancelTooLate, { orderId }),
    /** An earlier message of the sender is still on its way (waiting in a retry tier): it may be the order the cancel is meant for. */
    cancelEarlierUnanswered: () => texts.cancelEarlierUnanswered,
    orderStatus(orderId: string, status: string, total: string, currency: string): string {
      return fill(texts.orderStatus, { orderId, status: statusText(texts, status), total, currency });
    },
    /** An earlier message of the sender is still on its way: it may be the order the question is about. */
    statusEarlierUnanswered: () => texts.statusEarlierUnanswered,
    noOrders: () => texts.noOrders,
    /** Every product given, in MAX_REPLY_CHARS: their names shortened as far as it takes. */
    menu(products: Product[]): string {
      if (products.length === 0) return texts.menuEmpty;
      return fitNames((nameChars) => {
        const lines = products.map((p) => `• ${shorten(p.name, nameChars)}: ${p.currency} ${p.price}`).join('\n');
        return fill(texts.menu, { lines, example: shorten(products[0]!.name, nameChars) });
      });
    },
    unsupported: () => texts.unsupported,
  };
}

export type Replies = ReturnType<typeof repliesIn>;

function describeProblem(texts: ReplyCatalogue, problem: Problem): string {
  if (problem.reason === 'too_long') return fill(texts.problemTooLong, { maxItems: MAX_ITEMS, maxChars: MAX_TEXT_CHARS });
  const phrase = shorten(problem.phrase, QUOTED_CHARS);
  // Said beside an order or negated, a cancel is never carried out; the customer learns how to ask for one.
  if (problem.reason === 'cancel') return fill(texts.problemCancel, { phrase });
  if (problem.reason === 'question') return fill(texts.problemQuestion, { phrase });
  if (problem.reason === 'price') return fill(texts.problemPrice, { phrase, price: problem.candidates[0]!.price, currency: problem.candidates[0]!.currency });
  if (problem.reason === 'note') return fill(texts.problemNote, { phrase });
  if (problem.reason === 'quantity') return fill(texts.problemQuantity, { phrase });
  if (problem.reason === 'currency') return fill(texts.problemCurrency, { phrase });
  if (!isSuggestion(problem)) return fill(texts.problemUnknown, { phrase });
  const names = problem.candidates.slice(0, 3).map((c) => shorten(c.name, QUOTED_CHARS));
  return fill(texts.problemSuggestion, { phrase, names: names.join(` ${texts.or} `) });
}

/** A "did you mean …?": the rest of describeProblem's reasons carry candidates only for their own texts. */
function isSuggestion(problem: Problem): boolean {
  return (problem.reason === 'unknown' || problem.reason === 'ambiguous') && problem.candidates.length > 0;
}

/**
 * Writes out as many of the first LISTED_PROBLEMS sentences as fit in MAX_REPLY_CHARS and counts the rest.
 * A "did you mean …?" written out is followed once by how to take it up: a "yes" to it places nothing.
 */
function fitClarification(texts: ReplyCatalogue, sentences: readonly string[], suggestions: ReadonlySet<string>): string {
  let reply = '';
  for (let listed = Math.min(sentences.length, LISTED_PROBLEMS); listed >= 0; listed -= 1) {
    const more = sentences.length - listed;
    const written = sentences.slice(0, listed);
    const hint = written.some((sentence) => suggestions.has(sentence)) ? [texts.suggestionHint] : [];
    const shown = [...written, ...hint, ...(more > 0 ? [fill(texts.problemsMore, { count: more })] : [])];
    reply = fill(texts.clarification, { problems: shown.join(' ') });
    if (reply.length <= MAX_REPLY_CHARS) return reply;
  }
  // Reached only with a shop's own clarification text longer than the limit.
  return shorten(reply, MAX_REPLY_CHARS);
}

/**
 * Names may be as long as a shop made them, and a reply of 20 products or order lines with
 * long names passed Twilio's limit: the provider refused it and the message was dead-lettered.
 * Each step shortens every name further; the last resort, reached only with a shop's own long
 * texts, cuts the reply itself.
 */
const NAME_CHARS_STEPS = [Infinity, QUOTED_CHARS, 40, 24, 12];

function fitNames(render: (nameChars: number) => string): string {
  let reply = '';
  for (const nameChars of NAME_CHARS_STEPS) {
    reply = render(nameChars);
    if (reply.length <= MAX_REPLY_CHARS) return reply;
  }
  return shorten(reply, MAX_REPLY_CHARS);
}

/** At most `max` UTF-16 units, ending in "…" when cut, never inside a surrogate pair. */
function shorten(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max - 1);
  return `${/[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut}…`;
}
