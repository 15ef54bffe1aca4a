// Runs test/pack/pack-and-install.mjs (repo root) as part of `npm test`: packs @hodei/core, worker,
// provider-process and testing, installs the tarballs into a temporary project outside the repo, and runs
// ESM and CJS consumers there. Set HODEI_SKIP_PACK_TEST=1 to skip it (e.g. with no registry access).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';

const script = fileURLToPath(new URL('../../../test/pack/pack-and-install.mjs', import.meta.url));

test.skipIf(process.env.HODEI_SKIP_PACK_TEST === '1')(
  'the packed packages install and run outside the monorepo (ESM, CJS, types, worker bin)',
  async () => {
    const result = await promisify(execFile)(process.execPath, [script], { timeout: 150_000, maxBuffer: 16 * 1024 * 1024 }).catch(
      (error: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(`pack-and-install failed:\n${error.stdout ?? ''}\n${error.stderr ?? error.message}`);
      },
    );
    expect(result.stdout).toContain('pack-and-install: all good');
  },
  160_000,
);
