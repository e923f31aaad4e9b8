import { fork } from 'node:child_process';
import path from 'node:path';
import type { Attack, AttackName } from './attacks';

const STOP_TIMEOUT_MS = 10_000;

/** Starts an attack in a child process (bench/attacker.ts); resolves once every connection is open. */
export function startAttackProcess(name: AttackName, port: number, connections: number): Promise<Attack> {
  // fork passes on this process's node flags, so the child loads TypeScript the way the bench does.
  const child = fork(path.join(__dirname, 'attacker.ts'), [name, String(port), String(connections)]);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const answers = new Map<number, number>();
  const stop = async () => {
    if (child.connected) child.send('stop');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the ${name} attacker exited with ${code} before it started`)));
    child.on('message', (message: { answers: [number, number][] }) => {
      for (const [code, count] of message.answers) answers.set(code, count);
      resolve({ answers, stop });
    });
  });
}
