import { CsvError, parse } from 'csv-parse/sync';
import { z } from 'zod';
import { WagateError } from '../errors';

export const CATALOG_COLUMNS = ['sku', 'name', 'price', 'currency', 'aliases'] as const;
type CatalogColumn = (typeof CATALOG_COLUMNS)[number];

export interface CatalogRow {
  sku: string;
  name: string;
  /** Decimal text such as "8.50", passed to Postgres as is: a JS number could not keep it exact. */
  price: string;
  currency: string;
  aliases: string[];
}

/** Every problem in the file, each as `line N: field: problem`; when thrown, nothing was imported. */
export class CatalogImportError extends WagateError {
  constructor(readonly problems: string[]) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super('CATALOG_INVALID', `catalog not imported, nothing was changed; fix ${count} and import the file again:\n${problems.join('\n')}`);
    this.name = 'CatalogImportError';
  }
}

const SKU_MAX_LENGTH = 64;
/**
 * Every name and alias is read by the parser and scanned by the match for each customer's
 * message: a description pasted into a cell, or hundreds of aliases, slowed every order.
 */
const NAME_MAX_LENGTH = 200;
const ALIAS_MAX_LENGTH = 100;
const MAX_ALIASES = 50;
/** products.price is numeric(12,2): at most 10 digits before the point and 2 after. */
const PRICE_PATTERN = /^\d{1,10}(\.\d{1,2})?$/;
/** Longest cell value quoted back in a problem, in characters. */
const QUOTED_VALUE_MAX_LENGTH = 40;

/**
 * Characters nobody sees but Postgres and the matcher do: controls left after line breaks and
 * tabs become spaces (a NUL, say), the zero-width space, word joiner, BOM and soft hyphen, and
 * the bidirectional overrides. "P1" followed by a zero-width space passed as a sku of its own
 * that no cart's "P1" finds, and a NUL failed the import with Postgres's error and no line.
 * The zero-width joiners of emoji and scripts that need them stay.
 */
const INVISIBLE = /[\p{Cc}\u00AD\u200B\u2060\uFEFF\u202A-\u202E\u2066-\u2069]/u;
const INVISIBLE_MESSAGE = 'contains an invisible or control character (such as a zero-width space or a NUL); retype the value';

/** A spreadsheet cell's text on one line: line breaks (Alt+Enter in a cell) and tabs become single spaces. */
function oneLine(value: string): string {
  return value.replace(/\s+/g, ' ').trim();
}

const catalogRowSchema = z.object({
  sku: z
    .string()
    .trim()
    .min(1, 'is empty')
    .max(SKU_MAX_LENGTH, `is longer than ${SKU_MAX_LENGTH} characters`)
    .regex(/^\S+$/, 'must not contain spaces')
    .refine((sku) => !INVISIBLE.test(sku), INVISIBLE_MESSAGE),
  name: z.string().transform(oneLine).pipe(
    z.string().min(1, 'is empty').max(NAME_MAX_LENGTH, `is longer than ${NAME_MAX_LENGTH} characters`).refine((name) => !INVISIBLE.test(name), INVISIBLE_MESSAGE),
  ),
  price: z
    .string()
    .trim()
    .min(1, 'is empty')
    .regex(PRICE_PATTERN, 'must be an amount of 0 or more with a point and at most 2 decimals, like 8.50 or 12'),
  currency: z
    .string()
    .trim()
    .min(1, 'is empty')
    .toUpperCase()
    .regex(/^[A-Z]{3}$/, 'must be a 3-letter currency code, like EUR'),
  aliases: z
    .string()
    .transform(splitAliases)
    .refine((aliases) => aliases.length <= MAX_ALIASES, `has more than ${MAX_ALIASES} aliases`)
    .refine((aliases) => aliases.every((alias) => alias.length <= ALIAS_MAX_LENGTH), `has an alias longer than ${ALIAS_MAX_LENGTH} characters`)
    .refine((aliases) => aliases.every((alias) => !INVISIBLE.test(alias)), INVISIBLE_MESSAGE),
});

interface CsvRecord {
  /** Physical line the record starts on, counting from 1. */
  line: number;
  fields: string[];
}

/**
 * Reads and checks a whole catalog file. Collects every problem before throwing, so that one
 * run of the import lists everything there is to fix.
 */
export function parseCatalogCsv(text: string): CatalogRow[] {
  const [header, ...records] = readRecords(text);
  if (!header) {
    throw new CatalogImportError([`line 1: header: the file is empty; its first line must be ${CATALOG_COLUMNS.join(',')}`]);
  }
  // Excel saves "CSV" with semicolons where the decimal mark is a comma: one header field then
  // holds every column, and a problem on every line would follow without naming the cause.
  if (header.fields.length === 1 && header.fields[0]!.split(';').length >= CATALOG_COLUMNS.length - 1) {
    throw new CatalogImportError([
      `line ${header.line}: header: the columns are separated by semicolons; save the file with commas between them (${CATALOG_COLUMNS.join(',')}), e.g. as "CSV UTF-8 (comma delimited)"`,
    ]);
  }
  const { columns, missing, problems } = readHeader(header);
  const rows: CatalogRow[] = [];
  const firstLineBySku = new Map<string, number>();
  for (const record of records) {
    const result = readRow(record, columns, missing);
    problems.push(...result.problems);
    if (result.sku !== undefined) {
      const firstLine = firstLineBySku.get(result.sku);
      if (firstLine === undefined) firstLineBySku.set(result.sku, record.line);
      else problems.push(`line ${record.line}: sku: "${result.sku}" is already on line ${firstLine}; each sku may appear once`);
    }
    if (result.row) rows.push(result.row);
  }
  if (problems.length > 0) throw new CatalogImportError(problems);
  return rows;
}

function readRecords(text: string): CsvRecord[] {
  // csv-parse counts a CRLF inside a quoted value as two lines; with LF only, its count is the file's.
  const normalized = text.replace(/\r\n?/g, '\n');
  let lastRecordEndLine = 0;
  try {
    return parse(normalized, {
      bom: true,
      trim: true,
      relax_column_count: true,
      skip_empty_lines: true,
      skip_records_with_empty_values: true,
      // info.lines is the line a record ends on; a quoted value may span several lines.
      on_record: (fields: string[], info: { lines: number }): CsvRecord => {
        lastRecordEndLine = info.lines;
        return { line: info.lines - fields.reduce((breaks, field) => breaks + countLineBreaks(field), 0), fields };
      },
    }) as CsvRecord[];
  } catch (error) {
    if (!(error instanceof CsvError)) throw error;
    if (error.code === 'CSV_QUOTE_NOT_CLOSED') {
      // csv-parse reports the end of the file; the open quote is in the record after the last complete one.
      const line = firstRecordLineAfter(normalized, lastRecordEndLine);
      throw new CatalogImportError([`line ${line}: csv: a double-quoted value is never closed (end it with ", and write a " inside it as "")`]);
    }
    throw new CatalogImportError([`line ${error.lines}: csv: ${error.message}`]);
  }
}

function countLineBreaks(value: string): number {
  return value.match(/\n/g)?.length ?? 0;
}

/** The first line after `line` that csv-parse would not skip as blank. */
function firstRecordLineAfter(text: string, line: number): number {
  const lines = text.split('\n');
  let next = line + 1;
  while (next < lines.length && /^[\s,]*$/.test(lines[next - 1] ?? '')) next += 1;
  return next;
}

interface Header {
  /** The catalog column of each position; undefined for an unknown or repeated column, whose values are ignored. */
  columns: (CatalogColumn | undefined)[];
  missing: Set<CatalogColumn>;
  problems: string[];
}

function readHeader({ line, fields }: CsvRecord): Header {
  const problems: string[] = [];
  const seen = new Set<string>();
  const columns = fields.map((field, index) => {
    if (field === '') problems.push(`line ${line}: header: column ${index + 1} has no name`);
    else if (!isCatalogColumn(field)) {
      problems.push(`line ${line}: header: unknown column "${field}"; the columns are ${CATALOG_COLUMNS.join(',')}`);
    } else if (seen.has(field)) problems.push(`line ${line}: header: column "${field}" appears more than once`);
    else {
      seen.add(field);
      return field;
    }
    return undefined;
  });
  const missing = new Set(CATALOG_COLUMNS.filter((column) => !seen.has(column)));
  for (const column of missing) problems.push(`line ${line}: header: missing column "${column}"`);
  return { columns, missing, problems };
}

interface RowResult {
  row?: CatalogRow;
  /** Set when the sku itself is valid, even if other fields are not, so that duplicates are still found. */
  sku?: string;
  problems: string[];
}

function readRow({ line, fields }: CsvRecord, columns: Header['columns'], missing: Set<CatalogColumn>): RowResult {
  if (fields.length !== columns.length) {
    return {
      problems: [
        `line ${line}: row: has ${fields.length} values but the header has ${columns.length} columns (put a value that contains a comma in double quotes)`,
      ],
    };
  }
  // A missing column is reported once, on the header; its cells count as empty here.
  const input: Record<CatalogColumn, string> = { sku: '', name: '', price: '', currency: '', aliases: '' };
  columns.forEach((column, index) => {
    if (column) input[column] = fields[index] ?? '';
  });
  const sku = catalogRowSchema.shape.sku.safeParse(input.sku);
  const result = catalogRowSchema.safeParse(input);
  if (result.success) return { row: result.data, sku: result.data.sku, problems: [] };

  const reported = new Set<string>();
  const problems: string[] = [];
  for (const issue of result.error.issues) {
    const field = String(issue.path[0]) as CatalogColumn;
    // One problem per field is enough to fix it; later checks on an empty value only repeat it.
    if (reported.has(field) || missing.has(field)) continue;
    reported.add(field);
    problems.push(`line ${line}: ${field}: ${issue.message}${describeValue(input[field])}`);
  }
  return { sku: sku.success ? sku.data : undefined, problems };
}

function isCatalogColumn(name: string): name is CatalogColumn {
  return (CATALOG_COLUMNS as readonly string[]).includes(name);
}

function describeValue(value: string): string {
  if (value.trim() === '') return '';
  const shown = value.length > QUOTED_VALUE_MAX_LENGTH ? `${value.slice(0, QUOTED_VALUE_MAX_LENGTH)}…` : value;
  return ` (got ${JSON.stringify(shown)})`;
}

/** "Coke | Coca-Cola||" -> ["Coke", "Coca-Cola"]: trimmed, without empties or repeats. */
function splitAliases(value: string): string[] {
  const aliases = value
    .split('|')
    .map(oneLine)
    .filter((alias) => alias !== '');
  return [...new Set(aliases)];
}

/**
 * The file's text, which must be UTF-8 (with or without a BOM). Excel's plain "CSV (Comma
 * delimited)" on Windows writes Windows-1252: read as UTF-8, "Café crème" was imported as
 * "Caf\uFFFD cr\uFFFDme" without a word. Its "Unicode Text" writes UTF-16.
 */
export function decodeCatalogFile(bytes: Uint8Array): string {
  // Without its byte-order mark, UTF-16 text of Latin letters is every other byte a NUL; a
  // stray NUL in UTF-8 is left to the per-field check, which names its line.
  const sample = bytes.subarray(0, 4096);
  const utf16 = (bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff) || sample.filter((byte) => byte === 0).length > sample.length / 4;
  if (utf16) throw new CatalogImportError([`line 1: encoding: the file is UTF-16 (Excel's "Unicode Text"); ${SAVE_AS_UTF8}`]);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const offset = firstNonUtf8Byte(bytes);
    const line = bytes.subarray(0, offset).filter((byte) => byte === 0x0a).length + 1;
    const byte = bytes[offset]!.toString(16).toUpperCase().padStart(2, '0');
    throw new CatalogImportError([`line ${line}: encoding: byte 0x${byte} is not UTF-8 (the file looks saved as Windows-1252 or Latin-1); ${SAVE_AS_UTF8}`]);
  }
}

const SAVE_AS_UTF8 = 'save it as "CSV UTF-8 (Comma delimited)" and import it again';

/** Where UTF-8 decoding first fails: a lead byte that cannot start a character, or one whose continuation bytes are missing. */
function firstNonUtf8Byte(bytes: Uint8Array): number {
  for (let index = 0; index < bytes.length; ) {
    const lead = bytes[index]!;
    const continuations = lead < 0x80 ? 0 : lead >= 0xc2 && lead <= 0xdf ? 1 : lead >= 0xe0 && lead <= 0xef ? 2 : lead >= 0xf0 && lead <= 0xf4 ? 3 : -1;
    if (continuations < 0) return index;
    for (let next = 1; next <= continuations; next += 1) if (((bytes[index + next] ?? 0) & 0xc0) !== 0x80) return index;
    index += continuations + 1;
  }
  // Only overlong or surrogate forms remain, which the scan above lets through: name the start.
  return 0;
}
