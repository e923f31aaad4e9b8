import { z } from 'zod';
import { MAX_ADDRESS_LENGTH } from './adapter';

/**
 * Meta's WhatsApp Cloud API webhook envelope. Objects are loose because Meta adds fields
 * without notice; only what wagate relies on is required.
 */
const digits = z.string().regex(/^\d{1,12}$/, 'must be epoch seconds');
/**
 * Meta documents the timestamp as a string of epoch seconds; a JSON number of them is taken too,
 * since refusing it would mark a genuine message malformed over its quotes.
 */
const epochSeconds = z.union([digits, z.number().int().min(0).max(999_999_999_999)], 'must be epoch seconds');
const media = z.looseObject({ id: z.string().min(1), mime_type: z.string().optional() });

/** Content required for each message type Meta documents; other types pass as unknown. */
export const messageContentSchemas: Record<string, z.ZodType> = {
  text: z.looseObject({ body: z.string() }),
  image: media,
  audio: media,
  video: media,
  document: media,
  sticker: media,
  location: z.looseObject({ latitude: z.number(), longitude: z.number() }),
  contacts: z.array(z.looseObject({ name: z.looseObject({ formatted_name: z.string() }).optional() })).min(1),
  interactive: z.looseObject({
    type: z.string().min(1),
    button_reply: z.looseObject({ id: z.string(), title: z.string() }).optional(),
    list_reply: z.looseObject({ id: z.string(), title: z.string() }).optional(),
    nfm_reply: z.looseObject({ response_json: z.string() }).optional(),
  }),
  button: z.looseObject({ text: z.string(), payload: z.string().optional() }),
  order: z.looseObject({
    catalog_id: z.string().optional(),
    product_items: z
      .array(
        z.looseObject({
          product_retailer_id: z.string().min(1),
          quantity: z.union([z.number(), z.string()]),
          item_price: z.union([z.number(), z.string()]).optional(),
          currency: z.string().optional(),
        }),
      )
      .min(1),
  }),
  reaction: z.looseObject({ message_id: z.string().min(1), emoji: z.string().optional() }),
  system: z.looseObject({ body: z.string().optional(), type: z.string().optional() }),
};

const address = z.string().min(1).max(MAX_ADDRESS_LENGTH);

export const metaMessageSchema = z.looseObject({
  id: z.string().min(1).max(256),
  from: address.optional(),
  from_user_id: address.optional(),
  timestamp: epochSeconds,
  type: z.string().min(1).max(64),
  /** Set on a message written in a WhatsApp group the business is in (Meta's Groups API). */
  group_id: z.string().min(1).max(256).optional(),
});

export const metaStatusSchema = z.looseObject({
  id: z.string().min(1).max(256),
  status: z.string().min(1).max(32),
  timestamp: epochSeconds,
  recipient_id: z.string().max(MAX_ADDRESS_LENGTH).optional(),
  recipient_user_id: z.string().max(MAX_ADDRESS_LENGTH).optional(),
});

/** Judged one by one (metaContacts): a contact only adds a name and a user id, so a bad one is left out, not its messages. */
export const contactSchema = z.looseObject({
  // Empty is no address: an empty user_id became the sender's key, which no worker reads. Read
  // as left out, not refused: a refused field made the contact partial, and its name was lost.
  wa_id: z.preprocess((value) => (value === '' ? undefined : value), address.optional()),
  user_id: z.preprocess((value) => (value === '' ? undefined : value), address.optional()),
  profile: z.looseObject({ name: z.string().optional() }).optional(),
});

/** An entry of a value's `errors` array: Meta reporting a problem with the account or a send. */
export const metaErrorSchema = z.looseObject({
  code: z.number(),
  title: z.string().optional(),
  message: z.string().optional(),
  error_data: z.looseObject({ details: z.string().optional() }).optional(),
});

/** Messages and statuses stay unknown here: each is judged on its own afterwards. */
const messagesValueSchema = z.looseObject({
  messaging_product: z.literal('whatsapp'),
  metadata: z.looseObject({ display_phone_number: z.string().optional(), phone_number_id: z.string().min(1).max(MAX_ADDRESS_LENGTH) }),
  contacts: z.unknown().optional(),
  messages: z.array(z.unknown()).optional(),
  statuses: z.array(z.unknown()).optional(),
  errors: z.array(z.unknown()).optional(),
});

/** Entries, changes and values are each judged on their own, so that one odd part cannot discard its siblings' messages. */
export const metaEnvelopeSchema = z.object({
  object: z.literal('whatsapp_business_account'),
  entry: z.array(z.unknown()).min(1),
});
export const metaEntrySchema = z.looseObject({ id: z.string(), changes: z.array(z.unknown()) });
export const metaChangeSchema = z.looseObject({ field: z.string(), value: z.unknown() });

export { messagesValueSchema };
export type MetaContact = z.infer<typeof contactSchema>;
export type MetaMessage = z.infer<typeof metaMessageSchema>;
