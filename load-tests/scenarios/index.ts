import type { ScenarioModule } from '../lib/scenario.ts';
import { backlog } from './backlog.ts';
import { duplicateStorm } from './duplicate-storm.ts';
import { forgedSignatures } from './forged-signatures.ts';
import { metaConstant } from './meta-constant.ts';
import { mixedRamping } from './mixed-ramping.ts';
import { senderFlood } from './sender-flood.ts';
import { soak } from './soak.ts';
import { twilioConstant } from './twilio-constant.ts';

/** Every scenario by name, for the Node runner; k6 runs each through its own entry script in load-tests/. */
export const SCENARIOS: Record<string, ScenarioModule> = Object.fromEntries(
  [metaConstant, twilioConstant, mixedRamping, duplicateStorm, forgedSignatures, senderFlood, backlog, soak].map((scenario) => [scenario.name, scenario]),
);
