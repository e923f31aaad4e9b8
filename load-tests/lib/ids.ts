/**
 * Message ids and senders of one run. Ids carry the run id, so every run sends messages the
 * gateway has never seen and a check afterwards can find exactly this run's rows.
 */

/** Eight hex digits; also the start of every Twilio sid, which must look like Twilio's. */
export function newRunId(): string {
  return Math.floor(Math.random() * 0x100000000)
    .toString(16)
    .padStart(8, '0');
}

/** What both runners print before the load, so that the run's rows can be found while it runs or after it was stopped. */
export function runIdLine(scenario: string, runId: string): string {
  return `run ${runId}: message ids contain it (wamid.load.${scenario}.${runId}.…, SM${runId}…)`;
}

export function metaMessageId(runId: string, scenario: string, n: number): string {
  return `wamid.load.${scenario}.${runId}.${n}`;
}

/** "SM" and 32 hex digits, like a real MessageSid. */
export function twilioMessageSid(runId: string, n: number): string {
  return `SM${runId}${n.toString(16).padStart(24, '0')}`;
}

const SENDER_SPACE = 10_000_000;

/**
 * The n-th sender of this run: "1555" and seven digits, starting at an offset taken from the
 * run id, so that runs shortly after each other do not share senders' hourly rate limits.
 */
export function senderPhone(runId: string, n: number): string {
  const offset = parseInt(runId.slice(0, 6), 16) % SENDER_SPACE;
  return `1555${String((offset + n) % SENDER_SPACE).padStart(7, '0')}`;
}
