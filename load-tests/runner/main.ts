import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readSettings } from '../lib/settings.ts';
import { formatSummary } from '../lib/summary.ts';
import { SCENARIOS } from '../scenarios/index.ts';
import { runScenario } from './run.ts';

/** Exit codes as wagate's: 0 every threshold passed, 1 one failed (or the run broke), 2 a command line to correct. */
const USAGE = `usage: npm run load -- <scenario>\nscenarios: ${Object.keys(SCENARIOS).join(', ')}\nsettings come from the environment: see load-tests/README.md`;

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
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    return 2;
  }
  const summary = await runScenario(definition, settings, { log: (line) => process.stdout.write(`${line}\n`) });
  mkdirSync(path.dirname(path.resolve(settings.summaryPath)), { recursive: true });
  writeFileSync(settings.summaryPath, JSON.stringify(summary, null, 2));
  process.stdout.write(formatSummary(summary));
  process.stdout.write(`  summary: ${settings.summaryPath}\n`);
  return summary.ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    process.stderr.write(`load run failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
