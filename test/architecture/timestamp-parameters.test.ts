import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * postgres.js sends a parameter that Postgres types as timestamptz through a JS Date, which
 * keeps milliseconds only: a time read from Postgres as text (with its microseconds) and cast
 * straight back (`${at}::timestamptz`) comes back up to a millisecond early, and a window that
 * ends there misses what happened in that millisecond (an erase's late pass missed a message
 * recorded just before its commit). Such times go back as text: `${at}::text::timestamptz`.
 * Where a parameter is a Date already, nothing is lost, and the file says so here.
 */
const DATE_PARAMETERS: Record<string, string> = {
  'http/admin-stats.ts': 'the window\'s bounds are whole hours, read as Dates',
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? sources(full) : entry.name.endsWith('.ts') ? [full] : [];
  });
}

it('sends times back to Postgres as text, never cast straight from a parameter to timestamptz', () => {
  const root = path.join(__dirname, '../../src');
  const cast = sources(root).flatMap((file) => {
    const relative = path.relative(root, file).split(path.sep).join('/');
    if (DATE_PARAMETERS[relative]) return [];
    return [...readFileSync(file, 'utf8').matchAll(/\$\{[^}]*\}::timestamp(?:tz)?\b/gi)].map((match) => `${relative}: ${match[0]}`);
  });
  expect(cast).toEqual([]);
});
