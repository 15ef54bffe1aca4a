/** Env names that are secret without being listed: `*_TOKEN`, `*_SECRET`, `*_PASSWORD`, `*_KEY`. */
export const SECRET_NAME_PATTERN = /(?:_TOKEN|_SECRET|_PASSWORD|_KEY)$/i;

/** Shorter values are not masked in logs: masking `abc` would mangle ordinary output. */
export const MIN_MASKED_SECRET_LENGTH = 8;

/** What a secret value is replaced with in logs and in specs returned to clients. */
export const MASK = '***';

/** The names in `env` whose values are secret: the listed ones plus those matching the name pattern. */
export function secretEnvNames(env: Record<string, string>, listed: readonly string[]): string[] {
  const names = new Set(listed.filter((name) => name in env));
  for (const name of Object.keys(env)) if (SECRET_NAME_PATTERN.test(name)) names.add(name);
  return [...names];
}

/**
 * A function that replaces every secret value of the job in a line with `***`. Values are matched longest
 * first so a secret containing another is masked whole; a multi-line secret is masked line by line.
 */
export function createSecretMasker(env: Record<string, string>, listed: readonly string[]): (text: string) => string {
  const pattern = secretPattern(env, listed);
  if (!pattern) return (text) => text;
  return (text) => text.replace(pattern, MASK);
}

/**
 * A function that tells where `createSecretMasker` would mask secrets in a text: the `[start, end)` of each
 * match, left to right. A splitter of long lines uses it so as not to cut a line inside a secret.
 */
export function createSecretFinder(
  env: Record<string, string>,
  listed: readonly string[],
): (text: string) => Array<readonly [start: number, end: number]> {
  const pattern = secretPattern(env, listed);
  if (!pattern) return () => [];
  return (text) => Array.from(text.matchAll(pattern), (match) => [match.index, match.index + match[0].length] as const);
}

/** One pattern matching every masked value, longest first (undefined: nothing to mask). */
function secretPattern(env: Record<string, string>, listed: readonly string[]): RegExp | undefined {
  const values = maskedSecretValues(env, listed);
  if (values.size === 0) return undefined;
  const escaped = [...values].sort((a, b) => b.length - a.length).map((value) => value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(escaped.join('|'), 'g');
}

/** The values `createSecretMasker` masks (each line of a multi-line secret, of at least MIN_MASKED_SECRET_LENGTH). */
function maskedSecretValues(env: Record<string, string>, listed: readonly string[]): Set<string> {
  const values = new Set<string>();
  for (const name of secretEnvNames(env, listed)) {
    for (const part of (env[name] ?? '').split(/\r?\n/)) if (part.length >= MIN_MASKED_SECRET_LENGTH) values.add(part);
  }
  return values;
}

/**
 * The length of the longest value `createSecretMasker` masks for this env (0: none): what a splitter of long lines
 * keeps back at a cut, so that no secret is cut in two and sent half in clear.
 */
export function longestMaskedSecret(env: Record<string, string>, listed: readonly string[]): number {
  let longest = 0;
  for (const value of maskedSecretValues(env, listed)) longest = Math.max(longest, value.length);
  return longest;
}
