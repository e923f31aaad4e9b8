import { randomBytes } from 'node:crypto';

/** A parsed form body; a name sent more than once (MediaUrl) keeps every value. */
export type FormBody = Record<string, string | string[]>;

export interface ShapedError {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export const META_MESSAGE_TYPES = ['text', 'image', 'audio', 'video', 'document', 'sticker', 'location', 'contacts', 'interactive', 'template', 'reaction'];

// Titles and details as Meta's WhatsApp error-code reference words them; Graph puts "(#code) title" in `message`.
const META_ERRORS: Record<number, { title: string; details: string }> = {
  4: { title: 'Application request limit reached', details: 'The app has reached its API call rate limit.' },
  100: { title: 'Invalid parameter', details: 'The request included one or more unsupported or misspelled parameters.' },
  80007: { title: 'Rate limit issues', details: 'The WhatsApp Business Account has reached its rate limit.' },
  130429: { title: 'Rate limit hit', details: 'Cloud API message throughput has been reached.' },
  2: { title: 'API Service', details: 'Temporary issue due to downtime.' },
  131000: { title: 'Something went wrong', details: 'Message failed to send due to an unknown error.' },
  131016: { title: 'Service unavailable', details: 'A service is temporarily unavailable.' },
  131026: { title: 'Message undeliverable', details: 'Unable to deliver message.' },
  131047: {
    title: 'Re-engagement message',
    details: 'Message failed to send because more than 24 hours have passed since the customer last replied to this number.',
  },
  131056: {
    title: '(Business Account, Consumer Account) pair rate limit hit',
    details: 'Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.',
  },
};

/** Graph's token errors (104 missing, 190 invalid) carry no WhatsApp `error_data`. */
const GRAPH_AUTH_CODES = new Set([104, 190]);

const TWILIO_ERRORS: Record<number, string> = {
  20003: 'Authenticate',
  20404: 'The requested resource was not found',
  20429: 'Too Many Requests',
  20500: 'Internal Server Error',
  20503: 'Service Unavailable',
  21211: "Invalid 'To' Phone Number",
  21602: 'Message body is required.',
  21603: "A 'From' phone number is required.",
  21604: "A 'To' phone number is required.",
  21610: 'Attempt to send to unsubscribed recipient',
  21617: 'The concatenated message body exceeds the 1600 character limit',
  21910: "Invalid From and To pair. From and To should be of the same channel",
};

/** The longest text Graph takes in a text message, and Twilio in a Body; both count UTF-16 units, as wagate does. */
const META_TEXT_MAX_CHARS = 4096;
const TWILIO_BODY_MAX_CHARS = 1600;

// E.164 after an optional channel prefix such as "whatsapp:".
const TWILIO_ADDRESS = /^(?:[a-z]+:)?\+?[1-9]\d{6,14}$/;

/** Shaped like Meta's ids: base64 of a small record holding the recipient's wa_id and 18 uppercase hex characters. */
export function createWamid(waId: string): string {
  const digits = waId.slice(0, 20);
  const record = Buffer.concat([
    Buffer.from([0x1c, 0x18, digits.length]),
    Buffer.from(digits, 'latin1'),
    Buffer.from([0x15, 0x02, 0x00, 0x11, 0x18, 0x12]),
    Buffer.from(randomBytes(9).toString('hex').toUpperCase(), 'latin1'),
    Buffer.from([0x00]),
  ]);
  return `wamid.${record.toString('base64')}`;
}

export function createTwilioSid(prefix: string): string {
  return prefix + randomBytes(16).toString('hex');
}

/** Meta answers with the digits only, whatever punctuation the caller sent. */
export function toWaId(to: string): string {
  return to.replace(/\D/g, '');
}

export function defaultMetaCode(status: number): number {
  if (status === 401) return 190;
  if (status === 429) return 130429;
  if (status === 503) return 131016;
  if (status >= 500) return 131000;
  return 100;
}

export function defaultTwilioCode(status: number): number {
  const byStatus: Record<number, number> = { 401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503 };
  // For other statuses Twilio's generic errors reuse the HTTP status as the code.
  return byStatus[status] ?? status;
}

export function metaErrorBody(code: number, message?: string, isTransient?: boolean): unknown {
  const known = META_ERRORS[code];
  const error: Record<string, unknown> = {
    message: message ?? (known ? `(#${code}) ${known.title}` : `(#${code}) Error`),
    type: 'OAuthException',
    code,
  };
  if (isTransient !== undefined) error.is_transient = isTransient;
  if (!GRAPH_AUTH_CODES.has(code)) error.error_data = { messaging_product: 'whatsapp', details: known?.details ?? error.message };
  error.fbtrace_id = randomBytes(17).toString('base64url');
  return { error };
}

/** Graph's answer to a send from a phone number id it does not know (or the token cannot use). */
export function unknownObjectBody(id: string): unknown {
  return {
    error: {
      message: `Unsupported post request. Object with ID '${id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api`,
      type: 'GraphMethodException',
      code: 100,
      error_subcode: 33,
      fbtrace_id: randomBytes(17).toString('base64url'),
    },
  };
}

export function twilioErrorBody(status: number, code: number, message?: string): unknown {
  return { code, message: message ?? TWILIO_ERRORS[code] ?? 'Error', more_info: `https://www.twilio.com/docs/errors/${code}`, status };
}

/** Who a send is addressed to: a number (`to`), or a business-scoped user id (`recipient`). */
export type MetaAddressee = { to: string } | { recipient: string };

export function metaSuccessBody(addressee: MetaAddressee, type: string, id: string): unknown {
  // Meta reports message_status only for template messages.
  const message = type === 'template' ? { id, message_status: 'accepted' } : { id };
  // A send to a user id is answered with that id, and no wa_id: the number is not the business's to see.
  const contact = 'to' in addressee ? { input: addressee.to, wa_id: toWaId(addressee.to) } : { input: addressee.recipient, user_id: addressee.recipient };
  return { messaging_product: 'whatsapp', contacts: [contact], messages: [message] };
}

/** `to` when the send has one (Meta takes it first), else `recipient`. */
export function metaAddresseeOf(body: { to?: unknown; recipient?: unknown }): MetaAddressee {
  return typeof body.to === 'string' && body.to.trim() !== '' ? { to: body.to } : { recipient: String(body.recipient) };
}

const META_CALLBACK_DATA_MAX_CHARS = 512;

/** A phone number as Meta reads `to`: digits, with any punctuation. A user id ("US.1349…") holds letters. */
const META_PHONE_NUMBER = /^[+\d\s().-]+$/;

/** The "(#100) ..." message Graph gives for an invalid send body, or undefined when the body is acceptable. */
export function findMetaBodyError(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return '(#100) The parameter messaging_product is required.';
  const fields = body as Record<string, unknown>;
  if (fields.messaging_product === undefined) return '(#100) The parameter messaging_product is required.';
  if (fields.messaging_product !== 'whatsapp') return `(#100) Param messaging_product must be one of {WHATSAPP} - got "${String(fields.messaging_product)}".`;
  const hasRecipient = typeof fields.recipient === 'string' && fields.recipient.trim() !== '';
  if ((typeof fields.to !== 'string' || fields.to.trim() === '') && !hasRecipient) return '(#100) The parameter to is required.';
  // A user id belongs in `recipient`; `to` is a phone number.
  if (typeof fields.to === 'string' && fields.to.trim() !== '' && !META_PHONE_NUMBER.test(fields.to)) return '(#100) Invalid parameter: to must be a phone number; send a business-scoped user id as recipient.';
  // Meta treats a message without `type` as text.
  const type = fields.type ?? 'text';
  if (typeof type !== 'string' || !META_MESSAGE_TYPES.includes(type)) {
    return `(#100) Param type must be one of {${META_MESSAGE_TYPES.map((name) => name.toUpperCase()).join(', ')}} - got "${String(type)}".`;
  }
  const content = fields[type];
  if (typeof content !== 'object' || content === null) return `(#100) The parameter ${type} is required.`;
  if (type === 'text' && (typeof (content as Record<string, unknown>).body !== 'string' || (content as { body: string }).body === '')) {
    return "(#100) The parameter text['body'] is required.";
  }
  if (type === 'text' && (content as { body: string }).body.length > META_TEXT_MAX_CHARS) {
    return `(#100) Param text['body'] must be at most ${META_TEXT_MAX_CHARS} characters long.`;
  }
  // Echoed in the message's status webhooks; Meta takes a string of at most 512 characters.
  const callbackData = fields.biz_opaque_callback_data;
  if (callbackData !== undefined && (typeof callbackData !== 'string' || callbackData.length > META_CALLBACK_DATA_MAX_CHARS)) {
    return `(#100) Param biz_opaque_callback_data must be a string of at most ${META_CALLBACK_DATA_MAX_CHARS} characters.`;
  }
  return undefined;
}

export function formValue(form: FormBody, name: string): string | undefined {
  const value = form[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === '' ? undefined : first;
}

export function parseForm(raw: string): FormBody {
  const form: FormBody = {};
  for (const [name, value] of new URLSearchParams(raw)) {
    const existing = form[name];
    form[name] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  return form;
}

/** The channel an address names ("whatsapp" of "whatsapp:+1415…"), or "sms" for a bare number. */
function channelOf(address: string): string {
  return /^([a-z]+):/.exec(address)?.[1] ?? 'sms';
}

/**
 * Twilio's validation order: To, then a sender, then content, then the To format, then From and
 * To on one channel (a business number that lost its `whatsapp:` prefix is refused, 21910).
 */
export function findTwilioBodyError(form: FormBody): ShapedError | undefined {
  const to = formValue(form, 'To');
  const fail = (code: number, message?: string): ShapedError => ({ status: 400, body: twilioErrorBody(400, code, message) });
  if (!to) return fail(21604);
  if (!formValue(form, 'From') && !formValue(form, 'MessagingServiceSid')) return fail(21603);
  if (!formValue(form, 'Body') && !formValue(form, 'MediaUrl') && !formValue(form, 'ContentSid')) return fail(21602);
  if (!TWILIO_ADDRESS.test(to)) return fail(21211, `Invalid 'To' Phone Number: ${to}`);
  const from = formValue(form, 'From');
  if (from !== undefined && channelOf(from) !== channelOf(to)) return fail(21910);
  if ((formValue(form, 'Body') ?? '').length > TWILIO_BODY_MAX_CHARS) return fail(21617);
  return undefined;
}

/** Segments as Twilio counts them for SMS: 160/153 characters in GSM-7, 70/67 once any character needs UCS-2. */
function countSegments(body: string): number {
  const ucs2 = /[^\x00-\x7f]/.test(body);
  const [single, multi] = ucs2 ? [70, 67] : [160, 153];
  const length = [...body].length;
  return length <= single ? 1 : Math.ceil(length / multi);
}

/** RFC 2822 in GMT, written the way Twilio writes it ("+0000", not "GMT"). */
export function rfc2822(date: Date): string {
  return date.toUTCString().replace('GMT', '+0000');
}

export function twilioMessageResource(accountSid: string, form: FormBody, sid: string, now: Date): Record<string, unknown> {
  const from = formValue(form, 'From') ?? null;
  const serviceSid = formValue(form, 'MessagingServiceSid') ?? null;
  const body = formValue(form, 'Body') ?? '';
  const media = form.MediaUrl === undefined ? 0 : [form.MediaUrl].flat().length;
  const uri = `/2010-04-01/Accounts/${accountSid}/Messages/${sid}`;
  return {
    sid,
    date_created: rfc2822(now),
    date_updated: rfc2822(now),
    date_sent: null,
    account_sid: accountSid,
    to: formValue(form, 'To'),
    from,
    messaging_service_sid: serviceSid,
    body,
    // Through a Messaging Service without From, Twilio has not picked a sender yet: accepted, 0 segments.
    status: from ? 'queued' : 'accepted',
    num_segments: String(from ? countSegments(body) : 0),
    num_media: String(media),
    direction: 'outbound-api',
    api_version: '2010-04-01',
    price: null,
    price_unit: 'USD',
    error_code: null,
    error_message: null,
    uri: `${uri}.json`,
    subresource_uris: { media: `${uri}/Media.json` },
  };
}
