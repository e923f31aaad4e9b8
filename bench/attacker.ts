import { ATTACKS, type AttackName } from './attacks';

/**
 * One attack of bench/attacks.ts in a process of its own, forked by startAttackProcess: its
 * thousand sockets and its write loops would otherwise share the bench's event loop and delay
 * the genuine requests before they leave, which the bench would count against the ingest.
 * Arguments: the attack's name in ATTACKS, the ingest's port, the connections. It reports the
 * answers it has seen on start and every REPORT_MS, and stops when sent any message.
 */
const REPORT_MS = 50;

async function main(): Promise<void> {
  const [name, port, connections] = process.argv.slice(2);
  const attack = await ATTACKS[name as AttackName].start(Number(port), Number(connections));
  const report = (then: () => void = () => undefined) => process.send!({ answers: [...attack.answers] }, then);
  const timer = setInterval(() => report(), REPORT_MS);
  report();
  process.once('message', () => {
    clearInterval(timer);
    void attack.stop().then(() => report(() => process.exit(0)));
  });
}

// The bench gone (its IPC channel closed) means nobody will say stop.
process.once('disconnect', () => process.exit(0));
main().catch((error: Error) => {
  process.stderr.write(`attacker: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
