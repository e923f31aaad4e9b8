import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config';

/**
 * Every bound that charts/wagate/values.schema.json allows for a `config` value must start the
 * processes: a value the schema lets through and loadConfig refuses renders fine, passes the
 * migration hook, and then crash-loops every pod (and any old pod that restarts meanwhile, since
 * they share the ConfigMap).
 */
interface Property {
  type: string | string[];
  minimum?: number;
  maximum?: number;
}
const schema = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'charts', 'wagate', 'values.schema.json'), 'utf8')) as {
  properties: { config: { properties: Record<string, Property> } };
};
const properties = Object.entries(schema.properties.config.properties);

/**
 * Settings a bound is checked beside: the schema cannot relate two values, and these relations
 * are checked by the chart at render time instead (wagate.validateConfig, and chart-values.test.ts).
 */
const PARTNERS: Record<string, Record<string, string>> = {
  RETENTION_DAYS: { REPLAY_WINDOW_SECONDS: '60', ORDER_RETENTION_DAYS: '36500' },
  ORDER_RETENTION_DAYS: { RETENTION_DAYS: '1', REPLAY_WINDOW_SECONDS: '60' },
  MAX_IN_FLIGHT_BYTES: { MAX_BODY_BYTES: '1024' },
  MAX_BODY_BYTES: { BROKER_MAX_MESSAGE_BYTES: '536870912', MAX_IN_FLIGHT_BYTES: '536870912' },
  BROKER_MAX_MESSAGE_BYTES: { MAX_BODY_BYTES: '1024' },
  // The other port at its default must not collide with the bound.
  PORT: { METRICS_PORT: '9464' },
  METRICS_PORT: { PORT: '3000' },
};

const refused = (key: string, value: number): string | null => {
  try {
    loadConfig({ NODE_ENV: 'test', [key]: String(value), ...PARTNERS[key] });
    return null;
  } catch (error) {
    return `${key}=${value}: ${(error as Error).message}`;
  }
};

it('starts with every numeric config value at the bounds the chart\'s schema allows', () => {
  const bounds = properties.flatMap(([key, property]) =>
    [property.minimum, property.maximum].flatMap((bound) => (bound === undefined ? [] : [[key, bound] as const])));
  expect(bounds.length).toBeGreaterThan(20);
  expect(bounds.map(([key, bound]) => refused(key, bound)).filter(Boolean)).toEqual([]);
});
