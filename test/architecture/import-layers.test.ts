import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The folders of src/ are the layers (README, "Architecture"). Each layer may import
 * itself and the layers listed here, nothing else; a folder missing from this table fails
 * the check until someone decides where it sits. Packages from node_modules are not checked.
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  errors: [],
  failpoints: [],
  'settle-within': [],
  /** The command line's option parser, shared by main.ts and the commands (which may not import one another). */
  'parse-options': ['errors'],
  config: ['errors', 'failpoints'],
  telemetry: ['config', 'errors'],
  server: ['errors'],
  db: ['config', 'errors', 'settle-within', 'telemetry'],
  queue: ['config', 'errors', 'settle-within', 'telemetry'],
  ledger: ['config', 'errors', 'failpoints', 'settle-within', 'telemetry', 'db', 'queue'],
  webhooks: ['config', 'errors', 'telemetry', 'ledger'],
  replies: ['config', 'errors', 'telemetry'],
  orders: ['config', 'errors', 'failpoints', 'telemetry', 'db', 'queue', 'ledger', 'replies'],
  worker: ['config', 'errors', 'failpoints', 'settle-within', 'telemetry', 'db', 'queue', 'ledger', 'orders', 'replies'],
  http: ['config', 'errors', 'telemetry', 'db', 'ledger', 'webhooks', 'server'],
  autoscaler: ['config', 'errors', 'settle-within', 'telemetry', 'db', 'queue'],
  dev: ['config', 'errors', 'telemetry', 'server'],
  commands: ['config', 'errors', 'parse-options', 'settle-within', 'telemetry', 'server', 'db', 'queue', 'ledger', 'webhooks', 'replies', 'orders', 'worker', 'http', 'autoscaler', 'dev'],
  'tracing-bootstrap': ['settle-within', 'telemetry'],
};
/** main.ts wires the processes together, so it alone may import every layer. */
MAY_IMPORT.main = Object.keys(MAY_IMPORT);
/**
 * The clients of the outside world enter through one layer each, so that their errors are
 * classified in one place; other layers may use their types only.
 */
const CLIENT_LIBRARY_LAYER: Record<string, string> = { postgres: 'db', amqplib: 'queue', undici: 'replies', express: 'http' };
/** Layers whose files are siblings that must not know each other: one command never imports another. */
const NO_SIBLING_IMPORTS = new Set(['commands']);

const SRC = path.join(__dirname, '..', '..', 'src');

interface Import {
  from: string;
  to: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** Relative specifiers of import, export-from and dynamic import statements. */
function relativeImports(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((match) => match[1]!);
  return specifiers.map((specifier) => ({ from: file, to: path.resolve(path.dirname(file), specifier) }));
}

/** The layer of a path under src/: its first folder, or the file's own name for a file at the top. */
function layerOf(file: string): string {
  const [first, ...rest] = path.relative(SRC, file).split(path.sep);
  return rest.length === 0 ? first!.replace(/\.ts$/, '') : first!;
}

const show = (file: string) => path.relative(SRC, file);
const imports = sourceFiles(SRC).flatMap(relativeImports);

describe('the folders of src/ are layers that import only downwards', () => {
  it('finds the imports it checks', () => {
    expect(imports.length).toBeGreaterThan(100);
  });

  it('places every file in a declared layer', () => {
    const undeclared = [...new Set(sourceFiles(SRC).map(layerOf))].filter((layer) => !(layer in MAY_IMPORT));
    expect(undeclared).toEqual([]);
  });

  it('lets each layer import only itself and the layers it may use', () => {
    const violations = imports
      .filter(({ from, to }) => layerOf(from) !== layerOf(to) && !MAY_IMPORT[layerOf(from)]?.includes(layerOf(to)))
      .map(({ from, to }) => `${show(from)} imports ${show(to)}`);
    expect(violations).toEqual([]);
  });

  it('keeps sibling files of a wiring layer apart: one command never imports another', () => {
    const violations = imports
      .filter(({ from, to }) => NO_SIBLING_IMPORTS.has(layerOf(from)) && layerOf(from) === layerOf(to))
      .map(({ from, to }) => `${show(from)} imports ${show(to)}`);
    expect(violations).toEqual([]);
  });

  it('lets each client library of the outside world in through its one layer', () => {
    const violations = sourceFiles(SRC).flatMap((file) =>
      [...readFileSync(file, 'utf8').matchAll(/^import (?!type )[^;]*?from '([^']+)'/gm)]
        .map((match) => match[1]!)
        .filter((library) => library in CLIENT_LIBRARY_LAYER && CLIENT_LIBRARY_LAYER[library] !== layerOf(file))
        .map((library) => `${show(file)} uses ${library}`),
    );
    expect(violations).toEqual([]);
  });

  it('orders the layers: no chain of allowed imports leads back to where it started', () => {
    const cycles: string[] = [];
    const visiting = new Set<string>();
    const done = new Set<string>();
    const visit = (layer: string, trail: string[]): void => {
      if (done.has(layer)) return;
      if (visiting.has(layer)) {
        cycles.push([...trail, layer].join(' -> '));
        return;
      }
      visiting.add(layer);
      for (const below of MAY_IMPORT[layer] ?? []) visit(below, [...trail, layer]);
      visiting.delete(layer);
      done.add(layer);
    };
    Object.keys(MAY_IMPORT).forEach((layer) => visit(layer, []));
    expect(cycles).toEqual([]);
  });

  it('has no import cycle between files, type imports included: each file reads as a whole from what it imports', () => {
    const importsOf = new Map<string, string[]>();
    for (const { from, to } of imports) importsOf.set(from, [...(importsOf.get(from) ?? []), `${to.replace(/\.ts$/, '')}.ts`]);
    const cycles: string[] = [];
    const visiting: string[] = [];
    const done = new Set<string>();
    const visit = (file: string): void => {
      if (done.has(file)) return;
      const at = visiting.indexOf(file);
      if (at >= 0) {
        cycles.push([...visiting.slice(at), file].map(show).join(' -> '));
        return;
      }
      visiting.push(file);
      for (const imported of importsOf.get(file) ?? []) visit(imported);
      visiting.pop();
      done.add(file);
    };
    [...importsOf.keys()].forEach(visit);
    expect(cycles).toEqual([]);
  });
});
