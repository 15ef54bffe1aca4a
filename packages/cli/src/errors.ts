import { HodeiError } from '@hodei/core';

/** The CLI flag or argument each field of the core API corresponds to. */
const FLAGS: Record<string, string> = {
  spec: 'job spec',
  'spec.name': '--name',
  'spec.command': '--command',
  'spec.args': 'command arguments',
  'spec.script': '--script',
  'spec.script.content': '--script',
  'spec.script.interpreter': '--interpreter',
  'spec.env': '--env',
  'spec.secretEnv': '--secret',
  'spec.workingDir': '--workdir',
  'spec.timeoutMs': '--timeout',
  'spec.labels': '--label',
  'spec.maxAttempts': '--max-attempts',
  'spec.priority': '--priority',
  address: '--server',
  host: '--host',
  port: '--port',
  maxWorkers: '--max-workers',
  idleTimeoutMs: '--idle-timeout',
  heartbeatTimeoutMs: '--heartbeat-timeout',
  prefetch: '--prefetch',
};

/** Names a core field as the user typed it: `spec.timeoutMs` → `--timeout`, `spec.env.1X` → `--env 1X`. */
export function flagForField(field: string): string {
  if (FLAGS[field]) return FLAGS[field];
  for (const prefix of ['spec.env', 'spec.secretEnv', 'spec.labels']) {
    if (field.startsWith(`${prefix}.`)) return `${FLAGS[prefix]} ${field.slice(prefix.length + 1)}`;
  }
  return field;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * The one line printed on stderr for an error that ended a command: `hodei: <message>`, naming the flag
 * for invalid input. Never a stack trace for a HodeiError.
 */
export function formatError(error: unknown): string {
  if (HodeiError.isInstance(error)) {
    let message = error.message;
    if (error.field) {
      const flag = flagForField(error.field);
      if (message.startsWith(`${error.field}: `)) message = `${flag}: ${message.slice(error.field.length + 2)}`;
      else if (!message.startsWith(`${flag}:`) && !message.startsWith(`${flag} `)) message = `${flag}: ${message}`;
    }
    if (error.code === 'UNAVAILABLE' && message.startsWith('cannot reach the Hodei server')) {
      message = message
        .replace(/No connection established\. Last error: (Error: )?/, '')
        .replace(/\.?\s*Resolution note:.*$/s, '');
      message += ' (is "hodei server" running? set --server or HODEI_SERVER)';
    }
    return `hodei: ${oneLine(message)}`;
  }
  const message = error instanceof Error ? error.message : String(error);
  return `hodei: unexpected error: ${oneLine(message)}`;
}
