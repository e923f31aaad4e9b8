// k6 run -e BASE_URL=… -e WHATSAPP_APP_SECRET=… -e TWILIO_AUTH_TOKEN=… load-tests/duplicate-storm.ts  (see load-tests/README.md)
import { createK6Script } from './k6/script.ts';
import { duplicateStorm } from './scenarios/duplicate-storm.ts';

const script = createK6Script(duplicateStorm);
export const options = script.options;
export const setup = script.setup;
export const teardown = script.teardown;
export const handleSummary = script.handleSummary;
export default script.iterate;
