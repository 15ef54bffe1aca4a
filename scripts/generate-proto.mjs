// Regenerates the TypeScript protocol code from proto/ with buf + ts-proto (both from npm, no download).
// With --check, fails when the committed code differs from what the .proto files generate.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, cpSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tmpdir } from 'node:os';

const root = new URL('..', import.meta.url).pathname;
const target = join(root, 'packages/core/src/protocol/generated');
const check = process.argv.includes('--check');
const buf = join(root, 'node_modules/.bin/buf');

function listFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

const scratch = mkdtempSync(join(tmpdir(), 'hodei-proto-'));
try {
  execFileSync(buf, ['generate', '--output', scratch], { cwd: root, stdio: 'inherit' });
  const produced = join(scratch, 'packages/core/src/protocol/generated');
  if (check) {
    const fresh = listFiles(produced).map((f) => relative(produced, f)).sort();
    const committed = listFiles(target).map((f) => relative(target, f)).sort();
    const differing = [...new Set([...fresh, ...committed])].filter((file) => {
      try {
        return !readFileSync(join(produced, file)).equals(readFileSync(join(target, file)));
      } catch {
        return true;
      }
    });
    if (differing.length > 0) {
      console.error(`Generated protocol code is stale: ${differing.join(', ')}. Run \`npm run proto\` and commit.`);
      process.exit(1);
    }
    console.log('Generated protocol code is up to date.');
  } else {
    rmSync(target, { recursive: true, force: true });
    cpSync(produced, target, { recursive: true });
    console.log(`Generated ${listFiles(target).length} files into ${relative(root, target)}`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
