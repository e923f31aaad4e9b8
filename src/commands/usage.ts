/** One usage line (and its explanation) per command: `wagate help`, `wagate <command> --help` and every usage error print these. */
export const COMMAND_USAGE: Record<string, string> = {
  migrate: 'migrate                         apply database migrations (idempotent, safe to run concurrently; with WORK_SHARDS set, refuses a count other than the stored one)',
  ingest: 'ingest                          run the HTTP edge',
  worker: 'worker                          consume queued messages: orders and replies',
  autoscaler: 'autoscaler                      scale the worker Deployment with the backlog (Kubernetes, leader-elected)',
  dev: 'dev                             migrate, then run ingest and worker in one process (development)',
  'wait-ready': `wait-ready [--url URL] [--timeout SECONDS]
                                  wait until a gateway answers /readyz (default http://127.0.0.1:PORT, 60 s)`,
  send: `send [--provider meta|twilio] [--text T] [--from P] [--id ID] [--to N] [--url URL] [--timeout SECONDS]
                                  post a correctly signed sample webhook to a running gateway (waits 10 s for its answer)`,
  release: `release --phone P [--source whatsapp|twilio]
                                  re-queue a sender's rate_limited messages`,
  products: `products import FILE.csv [--deactivate-missing [--yes]]
                                  load the catalog (header: sku,name,price,currency,aliases); with the
                                  flag the file is the whole menu, and active products not in it are switched off
                                  (more than five and more than half of the menu only with --yes)`,
  dlq: `dlq list | replay [--id ID ...] | purge [--yes] [--id ID ...]
                                  inspect the dead letters and put them back`,
  replies: `replies unknown | undelivered [--hours N] | resend --id ID | settle --id ID --as sent|failed [--provider-id ID]
                                  list replies whose outcome is unknown, or that the provider accepted and
                                  then could not deliver (last 24 hours); resend one on purpose,
                                  or record what the provider says happened (with sent, the provider's
                                  message id, so that its delivery receipts reach the reply)`,
  reshard: `reshard --to N                  change the number of work shards, keeping each sender's order
                                  (then deploy WORK_SHARDS=N to every ingest and worker)`,
  'requeue-stuck': 'requeue-stuck                   put back messages whose queue copy was lost (see WagateMessagesStuck)',
  cleanup: 'cleanup [--days N]              retention cleanup (default RETENTION_DAYS)',
  erase: 'erase --phone P                 erase one customer\'s personal data everywhere it is kept',
  'fake-provider': 'fake-provider [--port 4010] [--host 127.0.0.1]\n                                  a local fake of the Graph API and Twilio REST, for demos and load tests',
  help: 'help [COMMAND]                  this text, or one command\'s usage',
};

export const USAGE = `usage: wagate <command> [options]

commands:
${Object.values(COMMAND_USAGE).map((line) => `  ${line}`).join('\n')}

exit status: 0 success, 1 failure (the message says what and what to do), 2 a command line to correct
`;

export function usageOf(command: string): string {
  const line = COMMAND_USAGE[command];
  return line ? `usage: wagate ${line}\n` : USAGE;
}

export function isHelpRequest(args: string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}
