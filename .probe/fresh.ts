import http from 'node:http';
import { createSystem } from '../bench/system-phases';

async function main() {
  const system = await createSystem((release) => release);
  try {
    for (let round = 0; round < 3; round += 1) {
      const ingest = await system.startIngest();
      const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
      const rate = 500, seconds = 5, total = rate * seconds, intervalMs = 1000 / rate;
      const lat: number[] = new Array(total);
      const start = performance.now();
      await new Promise<void>((resolve) => {
        let settled = 0, next = 0;
        const send = (i: number) => {
          const due = start + i * intervalMs;
          const m = system.source.next();
          const req = http.request(ingest.webhookUrl, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'x-hub-signature-256': m.signature } }, (res) => {
            res.resume();
            res.once('end', () => { lat[i] = performance.now() - due; if (++settled === total) resolve(); });
          });
          req.end(m.body);
        };
        const tick = () => { const now = performance.now(); while (next < total && start + next * intervalMs <= now) send(next++); if (next < total) setTimeout(tick, Math.max(0, start + next * intervalMs - performance.now())); };
        tick();
      });
      agent.destroy();
      const windows: string[] = [];
      for (let w = 0; w < 10; w += 1) {
        const slice = lat.slice(w * 250, (w + 1) * 250).sort((a, b) => a - b);
        windows.push(`${(w * 0.5).toFixed(1)}s p50 ${slice[125]!.toFixed(1)} max ${slice[249]!.toFixed(1)}`);
      }
      const first = lat.slice(0, 20).map((x) => x.toFixed(0)).join(' ');
      console.log(`round ${round}: first 20: ${first}\n  ${windows.join('\n  ')}`);
      await ingest.stop();
      system.ingests.pop();
    }
  } finally {
    await system.release();
  }
}
void main().then(() => process.exit(0));
