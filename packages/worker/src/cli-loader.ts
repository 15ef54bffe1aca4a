// The `hodei-worker` bin: runs the bundled worker (cli-bundle.cjs beside this file) through V8's code cache
// (cli-bundle.cjs.cache, written at build time by a run of the worker) so a cold start skips most of the
// compiling of gRPC. A Node whose V8 differs from the one that wrote the cache rejects it, and the bundle is
// compiled as usual: the cache only ever saves time.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire, wrap } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';

const bundle = join(__dirname, 'cli-bundle.cjs');

/** The cache, unless it is missing or older than the bundle (V8 checks a cache against its source's length only). */
function readCodeCache(): Buffer | undefined {
  const cache = `${bundle}.cache`;
  try {
    return statSync(cache).mtimeMs >= statSync(bundle).mtimeMs ? readFileSync(cache) : undefined;
  } catch {
    return undefined; // no cache (e.g. a build that skipped it): compile from source
  }
}

const cachedData = readCodeCache();
// The bundle starts with a #! line (it runs on its own too), which is no valid code inside a function: blanked.
const source = readFileSync(bundle, 'utf8').replace(/^#!.*/, '');
const script = new Script(wrap(source), { filename: bundle, cachedData });
// Set by the build: after this run, write the cache, with every function the run compiled.
const writeCacheTo = process.env.HODEI_WORKER_WRITE_CODE_CACHE;
delete process.env.HODEI_WORKER_WRITE_CODE_CACHE;
if (writeCacheTo) process.once('exit', () => writeFileSync(writeCacheTo, script.createCachedData()));
const bundleModule = { exports: {} };
(script.runInThisContext() as (...args: unknown[]) => void)(bundleModule.exports, createRequire(bundle), bundleModule, bundle, __dirname);
