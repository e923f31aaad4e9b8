import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { behaveRequestSchema, createBehaviourQueue, injectedError, type FakeBehaviour } from './fake-provider-behaviours';
import { checkMetaAuth, checkTwilioAuth, flattenHeaders, parseJson, readBody, sendJson } from './fake-provider-http';
import {
  createTwilioSid,
  createWamid,
  findMetaBodyError,
  findTwilioBodyError,
  metaErrorBody,
  metaAddresseeOf,
  metaSuccessBody,
  parseForm,
  toWaId,
  twilioMessageResource,
  type FormBody,
  unknownObjectBody,
} from './fake-provider-shapes';

export type { FakeBehaviour } from './fake-provider-behaviours';

export interface FakeProviderOptions {
  port?: number;
  host?: string;
  metaAccessToken?: string;
  twilioAccountSid?: string;
  twilioAuthToken?: string;
  /** Business phone number ids the Graph API knows; others get error 100, subcode 33. Any id when unset. */
  metaPhoneNumberIds?: string[];
}

export interface RecordedCall {
  provider: 'meta' | 'twilio';
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
  receivedAt: number;
  /** What the fake answered; 0 while the call is delayed, held or hung. */
  status: number;
  /** When the answer went out (Date.now()); absent until then. */
  answeredAt?: number;
  responseBody: unknown;
  providerMessageId?: string;
}

export interface FakeProvider {
  /** Base URL, e.g. http://127.0.0.1:PORT: use it as WHATSAPP_GRAPH_API_URL and TWILIO_API_URL. */
  url: string;
  calls(): RecordedCall[];
  /** Behaviour for the next `count` calls (default: all future calls), queued in order; after the queue is used up calls are answered ok. */
  behave(behaviour: FakeBehaviour, count?: number): void;
  /** Resolves when at least n calls have arrived (including held ones). */
  waitForCalls(n: number, timeoutMs?: number): Promise<RecordedCall[]>;
  /** Answers every held call OK. */
  release(): void;
  /** Clears calls and behaviours, answers held calls and drops hung connections. */
  reset(): void;
  close(): Promise<void>;
}

// Graph accepts an unversioned path too, and answers it with the oldest available version.
const META_SEND_PATH = /^(?:\/v\d+\.\d+)?\/[^/]+\/messages$/;
const TWILIO_SEND_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/;
const DEFAULT_WAIT_TIMEOUT_MS = 5000;

interface Waiter {
  n: number;
  resolve(calls: RecordedCall[]): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * A local stand-in for Meta's Graph API and Twilio's REST API. Each provider call takes the next
 * queued behaviour: `status` and `hang` apply before anything is checked (the provider failed);
 * `ok`, `delay` and `hold` end with the real checks (auth, then body) and the provider's answer.
 */
export async function startFakeProvider(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  let recorded: RecordedCall[] = [];
  const behaviours = createBehaviourQueue();
  let waiters: Waiter[] = [];
  const held = new Set<() => void>();
  const hung = new Set<http.ServerResponse>();
  const timers = new Set<NodeJS.Timeout>();

  function record(call: RecordedCall): void {
    recorded.push(call);
    const ready = waiters.filter((waiter) => recorded.length >= waiter.n);
    waiters = waiters.filter((waiter) => recorded.length < waiter.n);
    for (const waiter of ready) {
      clearTimeout(waiter.timer);
      waiter.resolve([...recorded]);
    }
  }

  function answer(call: RecordedCall, res: http.ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
    call.status = status;
    call.answeredAt = Date.now();
    call.responseBody = body;
    sendJson(res, status, body, headers);
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });
  }

  function answerMeta(call: RecordedCall, req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    const failure = checkMetaAuth(options.metaAccessToken, req, url);
    if (failure) return answer(call, res, failure.status, failure.body);
    const phoneNumberId = decodeURIComponent(url.pathname.split('/').at(-2) ?? '');
    if (options.metaPhoneNumberIds && !options.metaPhoneNumberIds.includes(phoneNumberId)) {
      return answer(call, res, 400, unknownObjectBody(phoneNumberId));
    }
    const invalid = findMetaBodyError(call.body);
    if (invalid) return answer(call, res, 400, metaErrorBody(100, invalid));
    const body = call.body as { to?: string; recipient?: string; type?: string };
    const addressee = metaAddresseeOf(body);
    call.providerMessageId = createWamid('to' in addressee ? toWaId(addressee.to) : addressee.recipient);
    answer(call, res, 200, metaSuccessBody(addressee, body.type ?? 'text', call.providerMessageId));
  }

  function answerTwilio(call: RecordedCall, req: http.IncomingMessage, res: http.ServerResponse, pathSid: string): void {
    const failure = checkTwilioAuth(options, req, pathSid) ?? findTwilioBodyError(call.body as FormBody);
    if (failure) return answer(call, res, failure.status, failure.body, failure.headers);
    call.providerMessageId = createTwilioSid('SM');
    answer(call, res, 201, twilioMessageResource(pathSid, call.body as FormBody, call.providerMessageId, new Date()));
  }

  async function handleProvider(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean> {
    const twilioSid = TWILIO_SEND_PATH.exec(url.pathname)?.[1];
    const provider = twilioSid !== undefined ? 'twilio' : META_SEND_PATH.test(url.pathname) ? 'meta' : undefined;
    if (req.method !== 'POST' || !provider) return false;
    const raw = await readBody(req);
    const call: RecordedCall = {
      provider,
      method: req.method,
      path: url.pathname,
      headers: flattenHeaders(req.headers),
      body: provider === 'meta' ? parseJson(raw) : parseForm(raw),
      receivedAt: Date.now(),
      status: 0,
      responseBody: null,
    };
    record(call);
    const behaviour = behaviours.next();
    if (behaviour.kind === 'hang') {
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return true;
    }
    if (behaviour.kind === 'hold') await new Promise<void>((resolve) => held.add(resolve));
    if (behaviour.kind === 'delay') await sleep(behaviour.ms);
    const failure = behaviour.kind === 'status' ? behaviour : behaviour.kind === 'hold' ? behaviour.answer : undefined;
    if (failure) {
      const error = injectedError(provider, failure);
      answer(call, res, error.status, error.body, error.headers);
      return true;
    }
    if (provider === 'meta') answerMeta(call, req, res, url);
    else answerTwilio(call, req, res, twilioSid!);
    return true;
  }

  /** The same operations over HTTP, for a fake that runs in another process than the test. */
  async function handleControl(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<boolean> {
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /_fake/calls') {
      sendJson(res, 200, recorded);
      return true;
    }
    if (route === 'POST /_fake/behave') {
      const parsed = behaveRequestSchema.safeParse(parseJson(await readBody(req)));
      if (!parsed.success) {
        sendJson(res, 400, { error: z.prettifyError(parsed.error) });
        return true;
      }
      behaviours.add(parsed.data.behaviour, parsed.data.count);
    } else if (route === 'POST /_fake/release') release();
    else if (route === 'POST /_fake/reset') reset();
    else return false;
    res.writeHead(204).end();
    return true;
  }

  function release(): void {
    for (const resolve of held) resolve();
    held.clear();
  }

  function reset(): void {
    release();
    for (const res of hung) res.destroy();
    hung.clear();
    recorded = [];
    behaviours.clear();
  }

  const server = http.createServer((req, res) => {
    // A target no URL can be made of ('//[', say) is the client's mistake: thrown here, outside
    // the handler's promise, it ended the process (and, in a test, the test runner's worker).
    const url = URL.parse(req.url ?? '/', 'http://fake-provider');
    if (!url) return sendJson(res, 400, { error: `the fake provider cannot read the request target ${JSON.stringify(req.url)}` });
    const handle = url.pathname.startsWith('/_fake/') ? handleControl : handleProvider;
    handle(req, res, url)
      .then((handled) => {
        if (!handled) sendJson(res, 404, { error: `the fake provider has no ${req.method} ${url.pathname}` });
      })
      .catch((error: Error) => sendJson(res, 500, { error: error.message }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });

  const { address, port } = server.address() as AddressInfo;
  const host = address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '[::1]' : address.includes(':') ? `[${address}]` : address;

  return {
    url: `http://${host}:${port}`,
    calls: () => [...recorded],
    behave: (behaviour, count) => behaviours.add(behaviour, count),
    waitForCalls(n, timeoutMs = DEFAULT_WAIT_TIMEOUT_MS) {
      if (recorded.length >= n) return Promise.resolve([...recorded]);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((waiter) => waiter.timer !== timer);
          reject(new Error(`the fake provider received ${recorded.length} of ${n} calls within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push({ n, resolve, reject, timer });
      });
    },
    release,
    reset,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      for (const waiter of waiters) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error('the fake provider was closed'));
      }
      waiters = [];
      held.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
