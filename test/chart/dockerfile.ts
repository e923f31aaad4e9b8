import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * The final stage of the Dockerfile, replayed on this machine: no Docker engine runs here and
 * no base image can be pulled, so its COPY and RUN lines are carried out into a folder that
 * stands for the image's WORKDIR.
 */
export interface Stage {
  name: string;
  workdir: string;
  env: Record<string, string>;
  user: string;
  instructions: { op: string; args: string }[];
}

export function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const match = /^(\w+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const op = match[1]!;
    const args = match[2]!;
    const upper = op.toUpperCase();
    if (upper === 'FROM') {
      stages.push({ name: /\bAS\s+(\S+)/i.exec(args)?.[1] ?? String(stages.length), workdir: '/', env: {}, user: 'root', instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) continue; // ARG before the first FROM
    if (upper === 'WORKDIR') stage.workdir = args;
    else if (upper === 'USER') stage.user = args;
    else if (upper === 'ENV') for (const [, k, v] of args.matchAll(/(\w+)=(\S+)/g)) stage.env[k!] = v!;
    stage.instructions.push({ op: upper, args });
  }
  return stages;
}

/** Files of a folder, relative, for "nothing else is in the image" checks. */
export function topLevelEntries(dir: string): string[] {
  return readdirSync(dir).sort();
}

/**
 * Carries out the stage's COPY and RUN lines into `target` (its WORKDIR). A COPY --from=<stage>
 * takes the file from this checkout's counterpart: the build stage compiles this repository in
 * its WORKDIR, so `/app/dist` there is `dist/` here (built by the test command before jest).
 */
export function replayStage(stage: Stage, buildStage: Stage, root: string, target: string, env: NodeJS.ProcessEnv): void {
  for (const { op, args } of stage.instructions) {
    if (op === 'COPY') {
      const words = args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      const destination = path.resolve(target, paths.at(-1)!);
      for (const source of paths.slice(0, -1)) {
        const local = from ? path.join(root, path.relative(buildStage.workdir, source)) : path.join(root, source);
        const into = destination.endsWith('/') || paths.length > 2 || statSync(local).isFile() ? path.join(destination, path.basename(source)) : destination;
        mkdirSync(path.dirname(into), { recursive: true });
        cpSync(local, into, { recursive: true });
      }
    }
    if (op === 'RUN') {
      // Build-cache mounts keep npm's cache out of the image; here npm uses its own cache.
      const command = args.replace(/--mount=\S+\s*/g, '');
      execFileSync('bash', ['-c', command], { cwd: target, env, stdio: 'pipe', timeout: 600_000 });
    }
  }
}

/** Takes write permission from everyone, recursively, as a read-only root filesystem does. */
export function makeReadOnly(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) makeReadOnly(full);
    if (!entry.isSymbolicLink()) chmodSync(full, statSync(full).mode & 0o555);
  }
  chmodSync(dir, statSync(dir).mode & 0o555);
}
