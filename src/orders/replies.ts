import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors';
import type { OrderLine, Problem } from './decision';
import { REPLY_LANGUAGES, type ReplyLanguage } from './detect-language';
import type { Product } from './match';

/** The catalogues shipped with wagate; REPLY_TEXTS_DIR points at a shop's own copies instead. */
export const DEFAULT_REPLY_TEXTS_DIR = path.join(__dirname, '..', '..', 'reply-texts');

const TEXT_KEYS = [
  'thanks', 'thanksWithName', 'orderConfirmation', 'orderLine', 'clarification', 'problemQuantity', 'problemCurrency',
  'problemUnknown', 'problemSuggestion', 'or', 'cancelled', 'nothingToCancel', 'orderStatus', 'status_open',
  'status_cancelled', 'status_fulfilled', 'noOrders', 'menuEmpty', 'menu', 'unsupported',
] as const;
const catalogueSchema = z.object(Object.fromEntries(TEXT_KEYS.map((key) => [key, z.string().min(1)])) as Record<(typeof TEXT_KEYS)[number], z.ZodString>);
export type ReplyCatalogue = z.infer<typeof catalogueSchema>;
export type ReplyCatalogues = Record<ReplyLanguage, ReplyCatalogue>;

/** Reads and checks every language's catalogue once, at start; a missing key names the file and the key. */
export function loadReplyCatalogues(dir: string = DEFAULT_REPLY_TEXTS_DIR): ReplyCatalogues {
  const entries = REPLY_LANGUAGES.map((language) => {
    const file = path.join(dir, `${language}.json`);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new ConfigError(`REPLY_TEXTS_DIR: cannot read the ${language} reply texts at ${file}: ${(error as Error).message}`);
    }
    const parsed = catalogueSchema.safeParse(json);
    if (!parsed.success) {
      const keys = parsed.error.issues.map((issue) => issue.path.join('.')).join(', ');
      throw new ConfigError(`REPLY_TEXTS_DIR: ${file} lacks or misspells the texts ${keys}`);
    }
    return [language, parsed.data] as const;
  });
  return Object.fromEntries(entries) as ReplyCatalogues;
}

/** "{name}" placeholders; an unknown one stays as written, so a typo shows in the reply rather than vanishing. */
function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (whole, key: string) => (key in values ? String(values[key]) : whole));
}

/** Reply texts in one language. */
export function repliesIn(texts: ReplyCatalogue) {
  return {
    orderConfirmation(orderId: string, name: string | null, lines: OrderLine[], total: string, currency: string): string {
      const items = lines.map((line) => fill(texts.orderLine, { quantity: line.quantity, ...line.product })).join(', ');
      const thanks = name ? fill(texts.thanksWithName, { name }) : texts.thanks;
      return fill(texts.orderConfirmation, { thanks, orderId, items, total, currency });
    },
    clarification(problems: Problem[]): string {
      const sentences = problems.map((problem) => {
        if (problem.reason === 'quantity') return fill(texts.problemQuantity, { phrase: problem.phrase });
        if (problem.reason === 'currency') return fill(texts.problemCurrency, { phrase: problem.phrase });
        const names = problem.candidates.slice(0, 3).map((c) => c.name);
        if (names.length === 0) return fill(texts.problemUnknown, { phrase: problem.phrase });
        return fill(texts.problemSuggestion, { phrase: problem.phrase, names: names.join(` ${texts.or} `) });
      });
      return fill(texts.clarification, { problems: sentences.join(' ') });
    },
    cancelled: (orderId: string) => fill(texts.cancelled, { orderId }),
    nothingToCancel: () => texts.nothingToCancel,
    orderStatus(orderId: string, status: string, total: string, currency: string): string {
      const shown = texts[`status_${status}` as keyof ReplyCatalogue] ?? status;
      return fill(texts.orderStatus, { orderId, status: shown, total, currency });
    },
    noOrders: () => texts.noOrders,
    menu(products: Product[]): string {
      if (products.length === 0) return texts.menuEmpty;
      const lines = products.map((p) => `• ${p.name}: ${p.currency} ${p.price}`).join('\n');
      return fill(texts.menu, { lines, example: products[0]!.name });
    },
    unsupported: () => texts.unsupported,
  };
}

export type Replies = ReturnType<typeof repliesIn>;
