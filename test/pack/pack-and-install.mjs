#!/usr/bin/env node
/* global process, console */
// Packs the public packages the way `npm publish` would, installs the tarballs into a fresh project
// outside the repository, and there queues a job through createPlatform() + ProcessProvider from an ESM
// script and from a CJS script, and through @hodei/testing; also type-checks both module kinds against the
// installed .d.ts files. Catches missing "files", wrong "exports" maps, workspace-only paths and a
// hodei-worker bin that does not resolve from an installed @hodei/provider-process.
//
// Needs built packages (`npm run build`) and the npm registry for their third-party dependencies.
// Usage: node test/pack/pack-and-install.mjs [--keep]   (--keep leaves the temporary project in place)
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PACKAGES = ['core', 'worker', 'provider-process', 'testing'];
const keep = process.argv.includes('--keep');
const started = Date.now();
const step = (message) => console.log(`[pack ${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);

// A child npm must not inherit the workspace context of an `npm run`/`npm test` that started us.
const env = Object.fromEntries(
  Object.entries(process.env).filter(
    ([key]) => !/^(npm_package_|npm_lifecycle_|npm_config_(local_prefix|workspaces?|include_workspace_root)$|INIT_CWD$)/i.test(key),
  ),
);
env.npm_config_update_notifier = 'false';
env.npm_config_fund = 'false';
env.npm_config_audit = 'false';

async function sh(cmd, args, cwd, options = {}) {
  try {
    return await run(cmd, args, { cwd, env, maxBuffer: 64 * 1024 * 1024, timeout: 120_000, ...options });
  } catch (error) {
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed:\n${error.stdout ?? ''}${error.stderr ?? error.message}`);
  }
}

const problems = [];
const warnings = [];

/** Every path package.json promises (main, module, types, bin, exports) must be in the tarball. */
function checkManifest(manifest, files) {
  const name = manifest.name;
  const has = (path) => files.has(path.replace(/^\.\//, ''));
  const targets = [];
  const walk = (value, where) => {
    if (typeof value === 'string') targets.push([value, where]);
    else if (value && typeof value === 'object') for (const [key, inner] of Object.entries(value)) walk(inner, `${where}.${key}`);
  };
  for (const field of ['main', 'module', 'types']) if (manifest[field]) targets.push([manifest[field], field]);
  walk(manifest.bin, 'bin');
  walk(manifest.exports, 'exports');
  for (const [path, where] of targets) if (!has(path)) problems.push(`${name}: ${where} -> ${path} is not in the tarball`);
  for (const field of ['license', 'engines', 'files', 'exports']) if (!manifest[field]) problems.push(`${name}: no "${field}"`);
  if (!manifest.repository) warnings.push(`${name}: no "repository" (npm shows no source link)`);
  for (const [dep, spec] of Object.entries({ ...manifest.dependencies, ...manifest.peerDependencies })) {
    if (/^(file|link|workspace|portal):|^\.{0,2}\//.test(spec)) problems.push(`${name}: dependency ${dep}@${spec} only resolves inside the repo`);
  }
  for (const file of files) {
    if (/^(src|test)\//.test(file) || /\.test\.[cm]?[jt]s$/.test(file)) problems.push(`${name}: ships ${file}`);
  }
}

const work = await mkdtemp(join(tmpdir(), 'hodei-pack-'));
if (!relative(root, work).startsWith('..')) throw new Error(`temporary directory ${work} is inside the repository`);
try {
  // 1. Pack.
  const tarballDir = join(work, 'tarballs');
  await mkdir(tarballDir);
  const tarballs = [];
  for (const name of PACKAGES) {
    const dir = join(root, 'packages', name);
    if (!existsSync(join(dir, 'dist'))) throw new Error(`packages/${name}/dist is missing: run \`npm run build\` first`);
    const { stdout } = await sh('npm', ['pack', '--json', '--pack-destination', tarballDir], dir);
    const [info] = JSON.parse(stdout.slice(stdout.indexOf('[')));
    const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
    checkManifest(manifest, new Set(info.files.map((file) => file.path)));
    tarballs.push(join(tarballDir, info.filename));
    step(`packed ${info.id}: ${info.entryCount} files, ${(info.size / 1024).toFixed(0)} KiB`);
  }

  // 2. Install into a fresh project outside the repository.
  const app = join(work, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'hodei-pack-consumer', private: true, version: '0.0.0' }, null, 2));
  await sh('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline', ...tarballs], app);
  step(`installed the tarballs into ${app}`);
  for (const name of PACKAGES) {
    const real = join(app, 'node_modules', '@hodei', name);
    if (!existsSync(join(real, 'package.json'))) problems.push(`@hodei/${name} is not in the consumer's node_modules`);
  }

  // 3. Run: ESM, CJS, @hodei/testing, and the worker bin.
  const job = `
    const hodei = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: 1 })] });
    try {
      const queued = await hodei.client.queue({ name: 'hello', command: 'echo hello; echo oops >&2', timeoutMs: 30000 });
      const lines = [];
      for await (const line of hodei.client.logs(queued.id, { follow: true })) lines.push(line);
      const done = await hodei.client.wait(queued.id);
      const stdout = lines.filter((line) => line.stream === 'stdout').map((line) => line.text);
      const stderr = lines.filter((line) => line.stream === 'stderr').map((line) => line.text);
      if (done.state !== 'SUCCEEDED' || stdout.join() !== 'hello' || stderr.join() !== 'oops') {
        throw new Error('unexpected result: ' + JSON.stringify({ state: done.state, exitCode: done.exitCode, lines }));
      }
      console.log('ok ' + done.state + ' ' + stdout.join());
    } finally {
      await hodei.close();
    }`;
  await writeFile(
    join(app, 'esm.mjs'),
    `import { createPlatform } from '@hodei/core';\nimport { ProcessProvider } from '@hodei/provider-process';\n${job}\n`,
  );
  await writeFile(
    join(app, 'cjs.cjs'),
    `const { createPlatform } = require('@hodei/core');\nconst { ProcessProvider } = require('@hodei/provider-process');\n` +
      `if (typeof require('@hodei/worker').startWorker !== 'function') throw new Error('@hodei/worker has no startWorker in CJS');\n` +
      `(async () => {${job}\n})().catch((error) => { console.error(error); process.exit(1); });\n`,
  );
  const testingJob = `
    const hodei = await createTestPlatform();
    try {
      const { job, stdout } = await hodei.run('echo hello');
      if (job.state !== 'SUCCEEDED' || stdout.join() !== 'hello') throw new Error('unexpected result: ' + JSON.stringify({ job, stdout }));
      console.log('ok ' + job.state + ' ' + stdout.join());
    } finally {
      await hodei.close();
    }`;
  await writeFile(join(app, 'testing-esm.mjs'), `import { createTestPlatform } from '@hodei/testing';\n${testingJob}\n`);
  await writeFile(
    join(app, 'testing-cjs.cjs'),
    `const { createTestPlatform } = require('@hodei/testing');\n(async () => {${testingJob}\n})().catch((error) => { console.error(error); process.exit(1); });\n`,
  );
  const scripts = ['esm.mjs', 'cjs.cjs', 'testing-esm.mjs', 'testing-cjs.cjs'];
  await Promise.all(
    scripts.map(async (script) => {
      try {
        const { stdout } = await sh(process.execPath, [script], app, { timeout: 60_000 });
        if (!stdout.includes('ok SUCCEEDED hello')) problems.push(`${script} printed: ${stdout}`);
        else step(`${script}: ${stdout.trim()}`);
      } catch (error) {
        problems.push(`${script}: ${error.message}`);
      }
    }),
  );
  const bin = join(app, 'node_modules', '.bin', 'hodei-worker');
  if (!existsSync(bin)) problems.push('node_modules/.bin/hodei-worker is missing');
  else {
    const { stdout } = await sh(bin, ['--help'], app);
    if (!stdout.includes('hodei-worker')) problems.push(`hodei-worker --help printed: ${stdout}`);
    else step('node_modules/.bin/hodei-worker --help works');
  }

  // 4. Types, as a consumer compiles them: node16 resolution, once as ESM (.mts) and once as CJS (.cts).
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const typesCheck = (importLine) => `${importLine}
export async function main(): Promise<string[]> {
  const hodei: Platform = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: 1 })] });
  const job: Job = await hodei.client.queue({ name: 'hello', command: 'echo hello' });
  const lines: LogLine[] = [];
  for await (const line of hodei.client.logs(job.id, { follow: true })) lines.push(line);
  const test = await createTestPlatform({ processProvider: { maxWorkers: 1 } });
  const result: RunResult = await test.run('echo hello');
  await test[Symbol.asyncDispose]();
  await hodei.close();
  return [...lines.map((line) => line.text), ...result.stdout];
}
`;
  // The same source twice: the extension alone makes TypeScript resolve the "import" or the "require" types.
  const imports =
    `import { createPlatform, type Platform, type Job, type LogLine } from '@hodei/core';\n` +
    `import { ProcessProvider } from '@hodei/provider-process';\nimport { createTestPlatform, type RunResult } from '@hodei/testing';`;
  await writeFile(join(app, 'types-esm.mts'), typesCheck(imports));
  await writeFile(join(app, 'types-cjs.cts'), typesCheck(imports));
  await writeFile(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'node16',
        moduleResolution: 'node16',
        target: 'ES2022',
        lib: ['ES2022', 'ESNext.Disposable'],
        types: [],
        strict: true,
        noEmit: true,
        skipLibCheck: true,
      },
      files: ['types-esm.mts', 'types-cjs.cts'],
    }),
  );
  try {
    await sh(process.execPath, [tsc, '-p', 'tsconfig.json'], app);
    step('types resolve for ESM (.mts) and CJS (.cts) consumers');
  } catch (error) {
    problems.push(`type check of the installed packages: ${error.message}`);
  }
} finally {
  if (keep) console.log(`kept ${work}`);
  else await rm(work, { recursive: true, force: true });
}

for (const warning of warnings) console.log(`warning: ${warning}`);
if (problems.length > 0) {
  console.error(`\npack-and-install: ${problems.length} problem(s):\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
  process.exit(1);
}
step('pack-and-install: all good');
