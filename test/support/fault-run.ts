import { loadConfig } from '../../src/config';
import { importCatalog } from '../../src/orders/catalog-import';
import { topologyFromConfig } from '../../src/queue/depths';
import type { FakeProvider } from '../../src/dev/fake-provider';
import { deleteTopology, TEST_AMQP_URL } from './amqp';
import { createTestDatabase, withPort, type TestDatabase } from './database';
import { testEnv } from './ingest';
import { ACCESS_TOKEN, CATALOG_CSV, PUBLIC_BASE_URL, startKnownFakeProvider, TWILIO_SID } from './pipeline';
import { spawnWagate, type ChildIngest } from './process';
import { startToxiproxy, type ToxicProxy, type Toxiproxy } from './toxiproxy';
import { postMetaText, uniqueWamid } from './webhooks';
import { waitFor } from './wait';

/** A request the load sent, and what it got. */
export interface Sent {
  id: string;
  from: string;
  /** HTTP status, or 0 when no answer came within the client's own timeout. */
  status: number;
  sentAtMs: number;
  answeredAtMs: number;
}

/** What a run injected into Postgres's path, so 503s can be checked against it. */
export interface PostgresFaultWindow {
  startMs: number;
  endMs: number;
}

/** A client gives up on a request after this long and counts it unanswered (status 0). */
const CLIENT_TIMEOUT_MS = 30_000;
/** Settling after the faults end: long outages leave backlogs that a loaded 2-core machine drains slowly. */
export const SETTLE_TIMEOUT_MS = 120_000;
const TERMINAL = ['processed', 'unmatched', 'dead'];

/**
 * A gateway and a worker as child processes, each reaching Postgres and RabbitMQ only
 * through Toxiproxy, with their own database, queue prefix and fake providers.
 */
export interface FaultRig {
  db: TestDatabase;
  fake: FakeProvider;
  toxiproxy: Toxiproxy;
  postgres: ToxicProxy;
  rabbitmq: ToxicProxy;
  env: Record<string, string>;
  ingest: ChildIngest;
  worker: ChildIngest;
  sent: Sent[];
  /** Kills (SIGKILL) the running ingest or worker and starts a new one, with extra env (a failpoint). */
  replace(role: 'ingest' | 'worker', extraEnv?: Record<string, string>): Promise<ChildIngest>;
  /** Sends `count` messages, one sender each, `perSecond` at a time, and records the answers. */
  sendLoad(count: number, perSecond: number): Promise<Sent[]>;
  /** Sends one message from a new sender and records the answer. */
  sendOne(): Promise<Sent>;
  /** Waits until every accepted message is finished and the outbox is empty. */
  settle(): Promise<void>;
  invariants(postgresFaults: PostgresFaultWindow[]): Promise<InvariantRow[]>;
  stop(): Promise<void>;
}

export interface InvariantRow {
  invariant: string;
  expected: string;
  observed: string;
  ok: boolean;
}

export async function startFaultRig(overrides: Record<string, string> = {}): Promise<FaultRig> {
  // Each piece is registered for teardown as soon as it runs, so a start that fails partway
  // (a child that does not come up in time on a loaded machine) leaves no database, fake
  // provider, Toxiproxy or process behind; stop() runs the same steps, newest first.
  const teardown: (() => Promise<unknown>)[] = [];
  const tearDown = async () => {
    let firstError: unknown;
    for (const step of teardown.splice(0).reverse()) await Promise.resolve().then(step).catch((error: unknown) => (firstError ??= error));
    if (firstError) throw firstError;
  };
  try {
    return await buildFaultRig(overrides, (step) => teardown.push(step), tearDown);
  } catch (error) {
    await tearDown().catch(() => undefined);
    throw error;
  }
}

async function buildFaultRig(
  overrides: Record<string, string>,
  onTeardown: (step: () => Promise<unknown>) => void,
  tearDown: () => Promise<void>,
): Promise<FaultRig> {
  const db = await createTestDatabase();
  onTeardown(() => db.drop());
  await importCatalog(db.sql, CATALOG_CSV);
  const fake = await startKnownFakeProvider();
  onTeardown(() => fake.close());
  const toxiproxy = await startToxiproxy();
  onTeardown(() => toxiproxy.close());
  const postgres = await toxiproxy.proxy('postgres', Number(new URL(db.url).port || 5432), new URL(db.url).hostname);
  const rabbitmq = await toxiproxy.proxy('rabbitmq', Number(new URL(TEST_AMQP_URL).port || 5672), new URL(TEST_AMQP_URL).hostname);
  const env = testEnv(withPort(db.url, postgres.port), {
    AMQP_URL: withPort(TEST_AMQP_URL, rabbitmq.port),
    PUBLIC_BASE_URL,
    WHATSAPP_ACCESS_TOKEN: ACCESS_TOKEN,
    WHATSAPP_GRAPH_API_URL: fake.url,
    TWILIO_API_URL: fake.url,
    TWILIO_ACCOUNT_SID: TWILIO_SID,
    OUTBOX_LEASE_SECONDS: '5',
    PUBLISH_CONFIRM_TIMEOUT_MS: '2000',
    ...overrides,
  });
  // An ingest declares the topology as it starts, before it may fail its warm-up.
  onTeardown(() => deleteTopology(topologyFromConfig(loadConfig(env))));
  // The processes running now: replace() swaps them, and teardown stops whichever run then.
  const running: Partial<Record<'ingest' | 'worker', ChildIngest>> = {};
  onTeardown(() => Promise.all([running.ingest?.stop('SIGKILL'), running.worker?.stop('SIGKILL')]));
  running.ingest = await spawnWagate('ingest', env);
  running.worker = await spawnWagate('worker', env);
  const sent: Sent[] = [];
  let senderSeq = 0;
  const runTag = String(Date.now() % 1_000_000).padStart(6, '0');

  async function sendOne(): Promise<Sent> {
    const id = uniqueWamid();
    const from = `1555${runTag}${String(senderSeq++).padStart(5, '0')}`;
    const sentAtMs = Date.now();
    const status = await Promise.race([
      postMetaText(rig.ingest.baseUrl, { id, from, text: '2 coke' }).then((reply) => reply.status, () => 0),
      new Promise<number>((resolve) => setTimeout(() => resolve(0), CLIENT_TIMEOUT_MS).unref()),
    ]);
    const entry = { id, from, status, sentAtMs, answeredAtMs: Date.now() };
    sent.push(entry);
    return entry;
  }

  const rig: FaultRig = {
    db, fake, toxiproxy, postgres, rabbitmq, env, sent,
    get ingest() { return running.ingest!; },
    set ingest(child) { running.ingest = child; },
    get worker() { return running.worker!; },
    set worker(child) { running.worker = child; },
    async replace(role, extraEnv = {}) {
      await running[role]!.stop('SIGKILL');
      running[role] = await spawnWagate(role, { ...env, ...extraEnv });
      return running[role];
    },
    async sendLoad(count, perSecond) {
      const pending: Promise<Sent>[] = [];
      const started = Date.now();
      for (let i = 0; i < count; i += 1) {
        const due = started + (i * 1000) / perSecond;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())));
        pending.push(sendOne());
      }
      return Promise.all(pending);
    },
    sendOne,
    async settle() {
      const accepted = sent.filter((s) => s.status === 200).map((s) => s.id);
      await waitFor('every accepted message finished and the outbox empty', async () => {
        const [row] = await db.sql<{ open: number; outbox: number }[]>`
          SELECT (SELECT count(*)::int FROM webhook_messages WHERE message_id = ANY(${accepted}) AND status <> ALL(${TERMINAL})) AS open,
                 (SELECT count(*)::int FROM outbox) AS outbox`;
        return row!.open === 0 && row!.outbox === 0;
      }, SETTLE_TIMEOUT_MS);
    },
    invariants: (windows) => checkInvariants(db, fake, sent, windows),
    stop: tearDown,
  };
  return rig;
}

async function checkInvariants(db: TestDatabase, fake: FakeProvider, sent: Sent[], windows: PostgresFaultWindow[]): Promise<InvariantRow[]> {
  const accepted = sent.filter((s) => s.status === 200);
  const ids = accepted.map((s) => s.id);
  const rows = await db.sql<{ message_id: string; status: string }[]>`
    SELECT message_id, status FROM webhook_messages WHERE message_id = ANY(${sent.map((s) => s.id)})`;
  const rowIds = new Set(rows.map((r) => r.message_id));
  const perId = new Map<string, number>();
  for (const r of rows) perId.set(r.message_id, (perId.get(r.message_id) ?? 0) + 1);
  const finished = rows.filter((r) => ids.includes(r.message_id) && TERMINAL.includes(r.status));
  const twiceRows = [...perId.values()].filter((n) => n > 1).length;
  const [orders] = await db.sql<{ twice: number; total: number }[]>`
    SELECT count(*) FILTER (WHERE n > 1)::int AS twice, coalesce(sum(n), 0)::int AS total
    FROM (SELECT count(*) AS n FROM orders WHERE message_id = ANY(${ids}) GROUP BY message_id) o`;
  const callsPerRecipient = new Map<string, number>();
  const senders = new Set(sent.map((s) => s.from));
  const calls = fake.calls().filter((call) => senders.has(String((call.body as { to?: string }).to ?? '')));
  for (const call of calls) {
    const to = String((call.body as { to?: string }).to ?? '');
    callsPerRecipient.set(to, (callsPerRecipient.get(to) ?? 0) + 1);
  }
  const confirmedTwice = [...callsPerRecipient.values()].filter((n) => n > 1).length;
  const unavailable = sent.filter((s) => s.status === 503);
  const outside = unavailable.filter((s) => !windows.some((w) => s.answeredAtMs >= w.startMs && s.sentAtMs <= w.endMs));
  const [outbox] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM outbox`;
  const unanswered = sent.filter((s) => s.status === 0 || (s.status !== 200 && s.status !== 503));
  return [
    row('every 200 has its row', `${accepted.length}`, `${accepted.filter((s) => rowIds.has(s.id)).length}`, accepted.every((s) => rowIds.has(s.id))),
    row('every accepted message processed, unmatched or dead', `${accepted.length}`, `${finished.length}`, finished.length === accepted.length),
    row('one row per message (finished exactly once)', '0 twice', `${twiceRows} twice`, twiceRows === 0),
    row('no order twice', '0 twice', `${orders!.twice} twice of ${orders!.total}`, orders!.twice === 0),
    row('no confirmation twice', '0 twice', `${confirmedTwice} twice of ${calls.length} calls`, confirmedTwice === 0),
    row('503s only while Postgres was hurt', `0 outside ${windows.length} window(s)`, `${outside.length} outside, ${unavailable.length} in all`, outside.length === 0),
    row('every request answered 200 or 503', '0 other', `${unanswered.length} other`, unanswered.length === 0),
    row('outbox empty after recovery', '0', `${outbox!.n}`, outbox!.n === 0),
  ];
}

function row(invariant: string, expected: string, observed: string, ok: boolean): InvariantRow {
  return { invariant, expected, observed, ok };
}

/** Prints the invariants of a run as a table, for the test log. */
export function printInvariants(title: string, rows: InvariantRow[]): void {
  const width = Math.max(...rows.map((r) => r.invariant.length));
  const lines = rows.map((r) => `${r.ok ? 'ok  ' : 'FAIL'} ${r.invariant.padEnd(width)}  expected ${r.expected.padEnd(18)} observed ${r.observed}`);
  process.stdout.write(`\n${title}\n${lines.join('\n')}\n`);
}
