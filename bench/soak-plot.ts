/**
 * Turns the samples of a soak run (JSON written by test/faults/soak.test.ts) into an SVG of
 * small line charts and a Markdown table of the figures. Usage: tsx bench/soak-plot.ts <json> <svg> <md>
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { FlatnessReport, SoakSample } from '../test/support/soak';

interface SoakRun {
  minutes: number;
  perSecond: number;
  warmUpSeconds: number;
  report: FlatnessReport;
  samples: SoakSample[];
}

interface Series {
  label: string;
  colour: string;
  values: number[];
}

const MIB = 1024 * 1024;
const CHART_WIDTH_PX = 420;
const CHART_HEIGHT_PX = 170;
const MARGIN_PX = 44;

function chart(title: string, unit: string, seconds: number[], series: Series[], warmUpSeconds: number, originX: number, originY: number): string {
  const all = series.flatMap((s) => s.values);
  const top = Math.max(...all, 1) * 1.1;
  const lastSecond = Math.max(...seconds, 1);
  const x = (s: number) => originX + MARGIN_PX + (s / lastSecond) * (CHART_WIDTH_PX - MARGIN_PX - 10);
  const y = (v: number) => originY + CHART_HEIGHT_PX - 24 - (v / top) * (CHART_HEIGHT_PX - 48);
  const lines = series.map((s) => {
    const points = s.values.map((v, i) => `${x(seconds[i]!).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    return `<polyline fill="none" stroke="${s.colour}" stroke-width="1.5" points="${points}"/>`;
  });
  const legend = series.map((s, i) => `<text x="${originX + MARGIN_PX + i * 90}" y="${originY + CHART_HEIGHT_PX - 4}" fill="${s.colour}" font-size="11">${s.label}</text>`);
  return [
    `<text x="${originX + MARGIN_PX}" y="${originY + 14}" font-size="13" font-weight="bold">${title}</text>`,
    `<text x="${originX + 2}" y="${y(top / 1.1) + 4}" font-size="10">${(top / 1.1).toFixed(1)} ${unit}</text>`,
    `<text x="${originX + 2}" y="${y(0) + 4}" font-size="10">0</text>`,
    `<line x1="${x(0)}" y1="${y(0)}" x2="${x(lastSecond)}" y2="${y(0)}" stroke="#999"/>`,
    `<line x1="${x(warmUpSeconds)}" y1="${y(top)}" x2="${x(warmUpSeconds)}" y2="${y(0)}" stroke="#bbb" stroke-dasharray="4 3"/>`,
    `<text x="${x(lastSecond) - 60}" y="${y(0) + 12}" font-size="10">${Math.round(lastSecond / 60)} min</text>`,
    ...lines,
    ...legend,
  ].join('\n');
}

export function soakSvg(run: SoakRun): string {
  const seconds = run.samples.map((s) => s.atSeconds);
  const pick = (f: (s: SoakSample) => number) => run.samples.map(f);
  const charts = [
    chart('RSS', 'MiB', seconds, [
      { label: 'ingest', colour: '#1f77b4', values: pick((s) => s.ingest.rssBytes / MIB) },
      { label: 'worker', colour: '#d62728', values: pick((s) => s.worker.rssBytes / MIB) },
    ], run.warmUpSeconds, 0, 0),
    chart('Heap used', 'MiB', seconds, [
      { label: 'ingest', colour: '#1f77b4', values: pick((s) => s.ingest.heapBytes / MIB) },
      { label: 'worker', colour: '#d62728', values: pick((s) => s.worker.heapBytes / MIB) },
    ], run.warmUpSeconds, CHART_WIDTH_PX, 0),
    chart('Event-loop delay p99', 'ms', seconds, [
      { label: 'ingest', colour: '#1f77b4', values: pick((s) => s.ingest.eventLoopP99Seconds * 1000) },
      { label: 'worker', colour: '#d62728', values: pick((s) => s.worker.eventLoopP99Seconds * 1000) },
    ], run.warmUpSeconds, 0, CHART_HEIGHT_PX),
    chart('Open handles, Postgres connections', '', seconds, [
      { label: 'ingest', colour: '#1f77b4', values: pick((s) => s.ingest.handles) },
      { label: 'worker', colour: '#d62728', values: pick((s) => s.worker.handles) },
      { label: 'pg conns', colour: '#2ca02c', values: pick((s) => s.postgresConnections) },
    ], run.warmUpSeconds, CHART_WIDTH_PX, CHART_HEIGHT_PX),
  ];
  const width = CHART_WIDTH_PX * 2;
  const height = CHART_HEIGHT_PX * 2;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${charts.join('\n')}\n</svg>\n`;
}

export function soakTable(run: SoakRun): string {
  const { report } = run;
  const mib = (bytes: number) => `${(bytes / MIB).toFixed(2)} MiB`;
  const rows = (['ingest', 'worker'] as const).map((role) => {
    const r = report[role];
    return `| ${role} | ${mib(r.heapBytesPer10Min)} | ${mib(r.rssBytesPer10Min)} | ${r.handlesEarly} → ${r.handlesLate} | ${(r.eventLoopP99MaxSeconds * 1000).toFixed(1)} ms |`;
  });
  return [
    `Soak of ${run.minutes} min at ${run.perSecond} messages/s, ${run.samples.length} samples every 10 s, ` +
      `the first ${Math.round(run.warmUpSeconds)} s left out as warm-up (${report.measured} measured).`,
    '',
    '| process | heap growth per 10 min | RSS growth per 10 min | open handles besides Postgres, median early → late | event-loop delay p99, highest |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    `Postgres connections, median early → late: ${report.postgresConnectionsEarly} → ${report.postgresConnectionsLate}.`,
    '',
  ].join('\n');
}

if (require.main === module) {
  const [json, svg, md] = process.argv.slice(2);
  if (!json || !svg || !md) {
    process.stderr.write('usage: tsx bench/soak-plot.ts <samples.json> <plot.svg> <figures.md>\n');
    process.exit(2);
  }
  const run = JSON.parse(readFileSync(json, 'utf8')) as SoakRun;
  writeFileSync(svg, soakSvg(run));
  writeFileSync(md, soakTable(run));
}
