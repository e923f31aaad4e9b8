// k6 run -e BASE_URL=… -e WHATSAPP_APP_SECRET=… -e TWILIO_AUTH_TOKEN=… load-tests/mixed-ramping.ts  (see load-tests/README.md)
import { createK6Script } from './k6/script.ts';
import { mixedRamping } from './scenarios/mixed-ramping.ts';

const script = createK6Script(mixedRamping);
export const options = script.options;
export const setup = script.setup;
export const teardown = script.teardown;
export const handleSummary = script.handleSummary;
export default script.iterate;
