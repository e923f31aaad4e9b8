import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { verifyDurability } from './checks';
import { createBenchEnvironment } from './environment';
import { createMessageSource } from './messages';
import { lifetimePeakRssMib } from './probes';
import { formatReport, medianPhase, type Summary } from './report';
import { runScenarioA, runScenarioB, scenarioSettings, type PhaseContext, type PhaseResult } from './scenarios';
import { startBareServer, startIngestServer, type ServerProcess } from './servers';

/**
 * `npm run bench`: a bare express endpoint and wagate's durable ingest, each in its own
 * process, loaded from this one. Every round runs both scenarios against both servers, in
 * turn, and the report gives the median of each figure over the rounds: on a shared
 * 2-core machine one noisy 10 s window would otherwise decide the result. The defaults
 * (3 rounds of 5 s, each after a 2 s warm-up) keep the whole run under two minutes.
 */
const ROUNDS = positiveInteger('BENCH_ROUNDS', 3);
const MEASURED_SECONDS = positiveInteger('BENCH_SECONDS', 5);
const OUTPUT_FILE = path.join(__dirname, '..', '.bench', 'last.json');

type Phases = Record<'aBare' | 'aDurable' | 'bBare' | 'bDurable', PhaseResult[]>;

/** Run in reverse on the way out, including Ctrl-C, so no database, queue or child is left behind. */
const cleanups: (() => Promise<void>)[] = [];

async function main(): Promise<number> {
  const startedAt = new Date();
  const env = await createBenchEnvironment();
  cleanups.push(() => env.destroy());
  const bare = await startBareServer();
  cleanups.push(() => bare.stop());
  const durable = await startIngestServer(env);
  cleanups.push(() => durable.stop());
  log(`run ${env.runId}: bare pid ${bare.pid}, ingest pid ${durable.pid}, ${ROUNDS} round(s) of ${MEASURED_SECONDS} s per phase`);

  const settings = scenarioSettings(MEASURED_SECONDS);
  const context: PhaseContext = { settings, source: createMessageSource(env.runId, env.appSecret), sql: env.sql, ackedIds: [] };
  const phases = await runRounds(bare, durable, context);
  log(`checking ${context.ackedIds.length} acknowledged messages`);
  const checks = await verifyDurability(env, context.ackedIds);

  const aBare = medianPhase(phases.aBare);
  const aDurable = medianPhase(phases.aDurable);
  const summary: Summary = {
    rounds: ROUNDS,
    settings,
    scenarioA: { bare: aBare, durable: aDurable, throughputRatio: aDurable.requestsPerSecond / aBare.requestsPerSecond },
    scenarioB: { bare: medianPhase(phases.bBare), durable: medianPhase(phases.bDurable) },
    lifetimePeakRssMib: { bare: lifetimePeakRssMib(bare.pid), durable: lifetimePeakRssMib(durable.pid) },
    checks,
  };
  process.stdout.write(`\n${formatReport(summary)}\n`);
  writeJson({
    startedAt: startedAt.toISOString(),
    durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
    machine: { cpus: os.cpus().length, node: process.version, loadAverage: os.loadavg() },
    ...summary,
    perRound: phases,
  });
  return checks.every((check) => check.ok) ? 0 : 1;
}

async function runRounds(bare: ServerProcess, durable: ServerProcess, context: PhaseContext): Promise<Phases> {
  const phases: Phases = { aBare: [], aDurable: [], bBare: [], bDurable: [] };
  for (let round = 1; round <= ROUNDS; round += 1) {
    const step = (name: string) => log(`round ${round}/${ROUNDS}: ${name}`);
    step(`scenario A, ${bare.name}`);
    phases.aBare.push(await runScenarioA(bare, context));
    step(`scenario A, ${durable.name}`);
    phases.aDurable.push(await runScenarioA(durable, context));
    step(`scenario B, ${bare.name}`);
    phases.bBare.push(await runScenarioB(bare, context));
    step(`scenario B, ${durable.name}`);
    phases.bDurable.push(await runScenarioB(durable, context));
  }
  return phases;
}

function writeJson(value: unknown): void {
  mkdirSync(path.dirname(OUTPUT_FILE), { recursive: true });
  writeFileSync(OUTPUT_FILE, `${JSON.stringify(value, null, 2)}\n`);
  log(`summary written to ${path.relative(process.cwd(), OUTPUT_FILE)}`);
}

function positiveInteger(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

async function cleanUp(): Promise<void> {
  while (cleanups.length > 0) {
    await cleanups.pop()!().catch((error: Error) => log(`cleanup failed: ${error.message}`));
  }
}

process.once('SIGINT', () => {
  log('interrupted; cleaning up');
  void cleanUp().finally(() => process.exit(130));
});

main()
  .then(async (code) => {
    await cleanUp();
    process.exit(code);
  })
  .catch(async (error: Error) => {
    log(`failed: ${error.stack ?? error.message}`);
    await cleanUp();
    process.exit(1);
  });
