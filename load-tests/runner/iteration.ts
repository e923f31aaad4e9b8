import { checkName, webhookTags, type PlannedRequest } from '../lib/payloads.ts';
import { ITERATION_ERRORS, type RunContext, type ScenarioDefinition } from '../lib/scenario.ts';
import type { HttpClient } from './http.ts';
import type { Recorder } from './recorder.ts';

export interface AnswerRecord {
  messageId: string;
  kind: string;
  status: number;
}

export interface IterationHooks {
  /** Every request's message id and answer (status 0: none), for checks against the database afterwards. */
  onAnswer?(answer: AnswerRecord): void;
  log?(line: string): void;
}

/** Latency counted from when the request was due: the open loop's view, which a late send cannot flatter. */
export const LATENCY_FROM_DUE = 'latency_from_due_ms';
/** How late requests left the generator: signing and a busy event loop delay the send. */
export const REQUEST_START_LAG = 'request_start_lag_ms';

/**
 * One iteration: its counters, its requests sent at once, each answer recorded. An iteration
 * that throws is a script error, and as k6 does the runner counts it, logs it and goes on; each
 * distinct message is logged once, as one broken builder would otherwise log at the full rate.
 */
export function createIteration(definition: ScenarioDefinition, run: RunContext, recorder: Recorder, client: HttpClient, hooks: IterationHooks) {
  const logged = new Set<string>();
  const sendOne = async (request: PlannedRequest, dueMs: number) => {
    recorder.trend(REQUEST_START_LAG, performance.now() - dueMs);
    const answer = await client.send(run.settings.baseUrl, request);
    recorder.trend(LATENCY_FROM_DUE, performance.now() - dueMs);
    hooks.onAnswer?.({ messageId: request.messageId, kind: request.tags.kind ?? '', status: answer.status });
    const ok = answer.error === null && answer.status === request.expectedStatus;
    recorder.request(webhookTags(request), checkName(request), answer.durationMs, ok);
    for (const counter of definition.counters) {
      if (counter.perAnswer) recorder.count(counter.name, counter.perAnswer(request, answer.status) ? 1 : 0);
    }
  };
  const iterate = async (iteration: number, dueMs: number) => {
    for (const counter of definition.counters) if (counter.perIteration) recorder.count(counter.name, counter.perIteration(iteration));
    const requests = await definition.plan(iteration, run);
    await Promise.all(requests.map((request) => sendOne(request, dueMs)));
  };
  return async (iteration: number, dueMs: number): Promise<void> => {
    try {
      await iterate(iteration, dueMs);
    } catch (error) {
      recorder.count(ITERATION_ERRORS, 1);
      const message = error instanceof Error ? error.message : String(error);
      if (logged.has(message)) return;
      logged.add(message);
      hooks.log?.(`iteration ${iteration} failed: ${message} (counted in ${ITERATION_ERRORS}; this message is not logged again)`);
    }
  };
}
