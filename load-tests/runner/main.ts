import { existsSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { refuseEmptyLoad } from '../lib/scenario.ts';
import { readSettings } from '../lib/settings.ts';
import { formatSummary } from '../lib/summary.ts';
import { SCENARIOS } from '../scenarios/index.ts';
import { INTERRUPT_GRACE_MS, runScenario, StartRefused } from './run.ts';

/**
 * Exit codes as wagate's: 0 every threshold passed, 1 one failed (or the run broke), 2 a
 * command line to correct; a run stopped by SIGINT or SIGTERM exits as a shell reports a
 * process the signal ended (130, 143), after its summary, whatever its verdicts.
 */
const USAGE = `usage: npm run load -- <scenario>\nscenarios: ${Object.keys(SCENARIOS).join(', ')}\nsettings come from the environment: see load-tests/README.md`;
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + constants.signals[signal];
}

/** The first SIGINT or SIGTERM stops the load and leads to the summary; a second one exits at once, as in k6. */
function listenForStop(): AbortController {
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) process.exit(signalExitCode(signal));
    process.stdout.write(`${signal}: stopping the load; the summary follows once the requests in flight are answered (${INTERRUPT_GRACE_MS / 1000} s at most)\n`);
    stop.abort(signal);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  return stop;
}

async function main(argv: string[]): Promise<number> {
  const name = argv[0];
  const scenario = name ? SCENARIOS[name] : undefined;
  if (!scenario || argv.length !== 1) {
    process.stderr.write(`${name && !scenario ? `unknown scenario "${name}"\n` : ''}${USAGE}\n`);
    return 2;
  }
  let settings;
  let definition;
  try {
    settings = readSettings(process.env, scenario.name, scenario.defaults);
    definition = scenario.define(settings);
    refuseEmptyLoad(definition.load);
    // k6's handleSummary writes no file into a folder that is missing, and says so only after
    // the load (a 30-minute soak): refused here before it, for the same SUMMARY_PATH to serve both.
    const folder = path.dirname(path.resolve(settings.summaryPath));
    if (!existsSync(folder)) throw new Error(`SUMMARY_PATH ${settings.summaryPath}: the folder ${folder} does not exist; create it first (k6 would not write the summary there either)`);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    return 2;
  }
  const stop = listenForStop();
  const summary = await runScenario(definition, settings, { log: (line) => process.stdout.write(`${line}\n`) }, stop.signal);
  writeFileSync(settings.summaryPath, JSON.stringify(summary, null, 2));
  process.stdout.write(formatSummary(summary));
  process.stdout.write(`  summary: ${settings.summaryPath}\n`);
  if (stop.signal.aborted) return signalExitCode(stop.signal.reason as NodeJS.Signals);
  return summary.ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    // Refused before the load: its message, and no stack; 2 when a setting is the user's to correct.
    if (error instanceof StartRefused) {
      process.stderr.write(`the run could not start: ${error.message}\n`);
      process.exitCode = error.settingToCorrect ? 2 : 1;
      return;
    }
    process.stderr.write(`load run failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
