import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const postinstall: string = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts.postinstall;

/**
 * Runs the project's own postinstall in a scratch app holding one package, demo@1.0.0, and one
 * patch. Without CI in the environment, as in a developer's shell or an image build.
 */
function postinstallWith(patchFile: string, removed: string): { status: number | null; output: string } {
  const app = mkdtempSync(path.join(os.tmpdir(), 'wagate-postinstall-'));
  try {
    mkdirSync(path.join(app, 'node_modules', 'demo'), { recursive: true });
    mkdirSync(path.join(app, 'patches'));
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'scratch', version: '1.0.0', dependencies: { demo: '1.0.0' } }));
    writeFileSync(path.join(app, 'node_modules', 'demo', 'package.json'), JSON.stringify({ name: 'demo', version: '1.0.0' }));
    writeFileSync(path.join(app, 'node_modules', 'demo', 'index.js'), 'module.exports = 1;\n');
    writeFileSync(
      path.join(app, 'patches', patchFile),
      [
        'diff --git a/node_modules/demo/index.js b/node_modules/demo/index.js',
        '--- a/node_modules/demo/index.js',
        '+++ b/node_modules/demo/index.js',
        '@@ -1 +1 @@',
        `-${removed}`,
        '+module.exports = 3;',
        '',
      ].join('\n'),
    );
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${path.join(ROOT, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH ?? ''}` };
    delete env.CI;
    delete env.NODE_ENV;
    const run = spawnSync('sh', ['-c', postinstall], { cwd: app, env, encoding: 'utf8', timeout: 60_000 });
    return { status: run.status, output: `${run.stdout}${run.stderr}` };
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
}

describe('npm ci\'s postinstall (patches/)', () => {
  it('applies a patch that matches its package', () => {
    const run = postinstallWith('demo+1.0.0.patch', 'module.exports = 1;');
    expect([run.status, run.output]).toEqual([0, expect.stringContaining('demo@1.0.0 ✔')]);
  });

  // Outside CI, patch-package only reports a patch it cannot apply, and the install (or the
  // image's build) goes on without the fix.
  it('fails the install when a patch no longer applies', () => {
    const run = postinstallWith('demo+1.0.0.patch', 'module.exports = 2;');
    expect([run.status, run.output]).toEqual([1, expect.stringContaining('Failed to apply patch for package demo')]);
  });

  it('fails the install when a patch was made for another version of its package', () => {
    const run = postinstallWith('demo+0.9.0.patch', 'module.exports = 1;');
    expect([run.status, run.output]).toEqual([1, expect.stringMatching(/demo[\s\S]*0\.9\.0[\s\S]*1\.0\.0/)]);
  });
});
