import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');

/** Runs a line of bash with the project's scripts sourced, from the project's folder. */
async function bash(line: string, env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run('bash', ['-c', line], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('the scripts behind the two commands', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'wagate-scripts-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('read a setting from its variable, or else from the file its _FILE variable names, as the process does', async () => {
    writeFileSync(path.join(dir, 'url'), 'postgres://shop@db.example:5432/wagate');
    const read = 'source scripts/services.sh; printf "[%s]" "$(setting DATABASE_URL)"';
    expect((await bash(read)).stdout).toBe('[]');
    expect((await bash(read, { DATABASE_URL_FILE: path.join(dir, 'url') })).stdout).toBe('[postgres://shop@db.example:5432/wagate]');
    expect((await bash(read, { DATABASE_URL: 'postgres://local', DATABASE_URL_FILE: path.join(dir, 'url') })).stdout).toBe('[postgres://local]');
  });

  it('stop at a _FILE variable that names a file they cannot read, rather than fall back to local services', async () => {
    const missing = path.join(dir, 'missing');
    const result = await bash('source scripts/services.sh; url="$(setting DATABASE_URL)"; echo "reached with [$url]"', { DATABASE_URL_FILE: missing });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`error: DATABASE_URL_FILE names ${missing}, which cannot be read`);
    expect(result.stdout).not.toContain('reached');
  });

  it.each([
    ['postgres://wagate:pw@db.internal:6432/app', 'db.internal 6432'],
    ['postgres://wagate:p@ss@db:6433/app?sslmode=require', 'db 6433'],
    ['postgres://wagate@[::1]:5433/app', '::1 5433'],
    ['postgres://wagate@[fd00::5]/app', 'fd00::5 5432'],
    ['postgres://postgres@127.0.0.1/postgres', '127.0.0.1 5432'],
    ['', '127.0.0.1 5432'],
  ])('read the host and port of %s as the services check them', async (url, endpoint) => {
    expect((await bash(`source scripts/services.sh; url_endpoint "${url}" 5432`)).stdout.trim()).toBe(endpoint);
  });

  it('name the commands the tests need that are missing, and how to install them', async () => {
    const result = await bash('source scripts/services.sh; ensure_commands bash no-such-command-here');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('error: missing on PATH: no-such-command-here (Debian: apt-get install curl postgresql-client)');
  });

  it('report a failed build of the Kubernetes control plane, even when etcd, built last, succeeds', async () => {
    // A go that serves the module download and builds etcd, and fails to build kube-apiserver.
    const bin = path.join(dir, 'bin');
    const kubernetes = path.join(dir, 'kubernetes');
    mkdirSync(bin);
    mkdirSync(kubernetes);
    writeFileSync(path.join(kubernetes, 'go.mod'), 'module k8s.io/kubernetes\n\ngo 1.25.0\n');
    writeFileSync(
      path.join(bin, 'go'),
      `#!/usr/bin/env bash
case "$1 $2" in
  "mod download") echo '{ "Dir": "${kubernetes}" }' ;;
  "mod tidy") ;;
  *) if [ "\${@: -1}" = ./etcd ]; then touch "$WAGATE_CACHE_DIR/etcd-built"; exit 0; fi; echo "link: out of memory" >&2; exit 2 ;;
esac
`,
    );
    chmodSync(path.join(bin, 'go'), 0o755);
    const cache = path.join(dir, 'cache');
    const result = await bash('source scripts/control-plane.sh; ensure_control_plane', { PATH: `${bin}:${process.env.PATH}`, WAGATE_CACHE_DIR: cache });
    expect(existsSync(path.join(cache, 'etcd-built'))).toBe(false);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('link: out of memory');
    expect(result.stderr).toContain('error: building the Kubernetes control plane failed (see above)');
  });
});
