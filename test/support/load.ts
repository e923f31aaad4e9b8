import type { ScenarioModule } from '../../load-tests/lib/scenario.ts';
import { readSettings, type Env } from '../../load-tests/lib/settings.ts';
import { REQUEST_TIMEOUT_MS } from '../../load-tests/runner/http.ts';
import { runScenario, type AnswerRecord, type RunHooks } from '../../load-tests/runner/run.ts';
import type { LoadSummary } from '../../load-tests/lib/summary.ts';
import type { Sql } from '../../src/db/client';
import { ADMIN_TOKEN, META_SECRET, TWILIO_TOKEN } from './ingest';
import { PUBLIC_BASE_URL } from './pipeline';

/**
 * Settings for a short run against a test gateway. The gateway, the worker and the load
 * share one process here, and the machine with every other test, so the latency thresholds
 * are set to the request timeout and VUs are plentiful: these runs check the verdicts and the
 * invariants; speed is measured in the bench, and a failing threshold is tested on its own.
 */
export function loadEnv(baseUrl: string, overrides: Env = {}): Env {
  return {
    BASE_URL: baseUrl,
    PUBLIC_BASE_URL,
    WHATSAPP_APP_SECRET: META_SECRET,
    TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
    ADMIN_TOKEN,
    RATE: '50',
    DURATION: '1s',
    ACK_P99_MS: String(REQUEST_TIMEOUT_MS),
    SLO_P99_MS: String(REQUEST_TIMEOUT_MS),
    // Every VU started at once: as in k6, an iteration that finds every started VU busy is
    // dropped while the pool grows, and a pause of the busy test machine must not drop any.
    PRE_ALLOCATED_VUS: '5000',
    MAX_VUS: '5000',
    ...overrides,
  };
}

export interface RunResult {
  summary: LoadSummary;
  answers: AnswerRecord[];
}

/** Runs a scenario with the Node runner and keeps every answer, for checks against the database. */
export async function runBriefly(scenario: ScenarioModule, baseUrl: string, overrides: Env = {}, hooks: RunHooks = {}): Promise<RunResult> {
  const settings = readSettings(loadEnv(baseUrl, overrides), scenario.name, scenario.defaults);
  const answers: AnswerRecord[] = [];
  const summary = await runScenario(scenario.define(settings), settings, { ...hooks, onAnswer: (answer) => answers.push(answer) });
  return { summary, answers };
}

export interface MessageRow {
  message_id: string;
  webhook_source: string;
  phone_number: string;
  status: string;
  duplicate_count: number;
}

export async function rowsFor(sql: Sql, ids: string[]): Promise<Map<string, MessageRow>> {
  const rows = await sql<MessageRow[]>`
    SELECT message_id, webhook_source, phone_number, status, duplicate_count FROM webhook_messages WHERE message_id = ANY(${[...new Set(ids)]})`;
  return new Map(rows.map((row) => [row.message_id, row]));
}

/** Message ids answered with the status, each once. */
export function idsAnswered(result: RunResult, status: number): string[] {
  return [...new Set(result.answers.filter((answer) => answer.status === status).map((answer) => answer.messageId))];
}
