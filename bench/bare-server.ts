import express from 'express';

/**
 * The baseline: the same route, body parser, body limit and answer as wagate's Meta
 * webhook, with nothing behind it. Run in its own process so it never shares an event
 * loop with the load generator.
 */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
/** Passed in by the bench, so both servers answer on the very same path. */
const WEBHOOK_PATH = process.env.WEBHOOK_PATH ?? '/';

const app = express();
app.disable('x-powered-by');
app.set('etag', false);
app.post(
  WEBHOOK_PATH,
  express.raw({ type: () => true, limit: MAX_BODY_BYTES }),
  (_req, res) => {
    res.status(200).type('text/plain; charset=utf-8').send('EVENT_RECEIVED');
  },
);

const server = app.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const address = server.address();
  // The parent waits for this line before it sends load.
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
