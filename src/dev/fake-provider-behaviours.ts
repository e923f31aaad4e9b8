import { z } from 'zod';
import { defaultMetaCode, defaultTwilioCode, metaErrorBody, twilioErrorBody, type ShapedError } from './fake-provider-shapes';

/** A provider-shaped error; the codes default from the status (Meta 429 -> 130429, Twilio 429 -> 20429, ...). */
export interface StatusBehaviour {
  kind: 'status';
  status: number;
  metaCode?: number;
  twilioCode?: number;
  /** A Retry-After header, on a bodyless answer only (see statusBehaviourSchema). */
  retryAfterSeconds?: number;
  message?: string;
  /** Graph's `is_transient` flag on the error. */
  isTransient?: boolean;
  /** No provider error body at all, as a proxy or load balancer in front of the provider answers a 502 or 504. */
  bodyless?: boolean;
}

export type FakeBehaviour =
  | { kind: 'ok' }
  /** Answer as `ok` would, after ms. */
  | { kind: 'delay'; ms: number }
  | StatusBehaviour
  /** Accept and never answer, until reset() or close() drops the connection. */
  | { kind: 'hang' }
  /** Hold until release() (or reset()), then answer as `ok` would, or with `answer`'s error. */
  | { kind: 'hold'; answer?: StatusBehaviour };

/**
 * Meta and Twilio document no Retry-After on their errors (Meta's 130429 says only "until you
 * are within your allowed level again"; Twilio's 20429, "retry after backing off"): a header
 * comes only from something in between, a proxy or an egress gateway, whose answer carries
 * no provider body. So the fake sends one only on a bodyless answer.
 */
const statusBehaviourSchema = z.object({
  kind: z.literal('status'),
  status: z.number().int().min(400).max(599),
  metaCode: z.number().int().optional(),
  twilioCode: z.number().int().optional(),
  retryAfterSeconds: z.number().int().min(0).optional(),
  message: z.string().optional(),
  isTransient: z.boolean().optional(),
  bodyless: z.boolean().optional(),
}).refine((behaviour) => behaviour.retryAfterSeconds === undefined || behaviour.bodyless === true, {
  message: 'retryAfterSeconds needs bodyless: true: Meta and Twilio send no Retry-After with their errors, only a proxy in between does',
  path: ['retryAfterSeconds'],
});

export const behaviourSchema: z.ZodType<FakeBehaviour> = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('ok') }),
  z.object({ kind: z.literal('delay'), ms: z.number().int().min(0) }),
  statusBehaviourSchema,
  z.object({ kind: z.literal('hang') }),
  z.object({ kind: z.literal('hold'), answer: statusBehaviourSchema.optional() }),
]);

/** The body of POST /_fake/behave. */
export const behaveRequestSchema = z.object({ behaviour: behaviourSchema, count: z.number().int().positive().optional() });

export interface BehaviourQueue {
  add(behaviour: FakeBehaviour, count?: number): void;
  /** The behaviour for the call that just arrived; `ok` once the queue is used up. */
  next(): FakeBehaviour;
  clear(): void;
}

export function createBehaviourQueue(): BehaviourQueue {
  let queue: { behaviour: FakeBehaviour; remaining: number }[] = [];
  return {
    add(behaviour, count) {
      const parsed = behaviourSchema.parse(behaviour);
      // An unbounded behaviour would make anything queued after it unreachable, so a newer one replaces it.
      if (queue.at(-1)?.remaining === Infinity) queue.pop();
      queue.push({ behaviour: parsed, remaining: count ?? Infinity });
    },
    next() {
      const head = queue[0];
      if (!head) return { kind: 'ok' };
      head.remaining -= 1;
      if (head.remaining <= 0) queue.shift();
      return head.behaviour;
    },
    clear() {
      queue = [];
    },
  };
}

export function injectedError(provider: 'meta' | 'twilio', behaviour: StatusBehaviour): ShapedError {
  const { status, message, retryAfterSeconds } = behaviour;
  const headers: Record<string, string> = retryAfterSeconds === undefined ? {} : { 'Retry-After': String(retryAfterSeconds) };
  if (behaviour.bodyless) return { status, body: null, headers };
  const body =
    provider === 'meta'
      ? metaErrorBody(behaviour.metaCode ?? defaultMetaCode(status), message, behaviour.isTransient)
      : twilioErrorBody(status, behaviour.twilioCode ?? defaultTwilioCode(status), message);
  return { status, body, headers };
}
