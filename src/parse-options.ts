import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors';

/**
 * node:util's parseArgs, refusing an option that takes one value when it is given twice:
 * parseArgs keeps the last, so `reshard --to 4 --to 8` would reshard to 8 without a word.
 */
export function parseOptions<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  const { tokens = [] } = parseArgs({ ...config, tokens: true });
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const repeatable = config.options?.[token.name]?.multiple === true;
    if (!repeatable && seen.has(token.name)) throw new UsageError(`--${token.name} is given twice; give it once`);
    seen.add(token.name);
  }
  return parseArgs(config);
}
