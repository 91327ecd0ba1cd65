/**
 * Flags of the cluster-facing commands (serve-commands.ts): each with its
 * env fallback, since the Helm chart and systemd units set env, and each bad
 * value refused with the flag's name.
 */
import type { NamedConfig, ConfigFile } from '../spec/config.js';
import { selectConfig } from '../spec/load.js';
import { parseDuration } from '../serve/kube/backoff.js';
import { checkNamespace, checkObjectName, Kube, loadKubeConfig } from '../serve/kube/kube.js';
import type { LogLevel } from '../serve/kube/logger.js';
import { messageOf } from '../serve/errors.js';
import { loadConfigOrNull } from './config-commands.js';
import { CliError, EXIT } from './exit-codes.js';

const LOG_LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];
const USER_AGENT = 'vmgpu-agent';

export const str = (v: Record<string, unknown>, k: string, env?: string): string | undefined => (v[k] as string | undefined) ?? (env ? process.env[env] || undefined : undefined);

export function logLevel(v: Record<string, unknown>): LogLevel {
  const l = (str(v, 'log-level', 'LOG_LEVEL') ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(l)) throw new CliError(`--log-level ${l}: use one of ${LOG_LEVELS.join(', ')}`);
  return l;
}

export function duration(v: Record<string, unknown>, k: string, env: string, def: string): number {
  return parseDuration(str(v, k, env) ?? def, `--${k}`);
}

export function kubeClient(v: Record<string, unknown>, component: string): Kube {
  return new Kube(loadKubeConfig(str(v, 'kubeconfig', 'KUBECONFIG')), { userAgent: `${USER_AGENT}/${component}` });
}

/** Resolve once, then wait for SIGTERM/SIGINT and run `stop`. */
export function untilSignal(stop: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    const onSig = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', onSig);
      process.off('SIGINT', onSig);
      process.stdout.write(`${JSON.stringify({ ts: new Date().toISOString(), level: 'info', msg: 'shutting down', signal: sig })}\n`);
      stop().then(
        () => resolve(EXIT.OK),
        () => resolve(EXIT.FAILURE),
      );
    };
    process.on('SIGTERM', onSig);
    process.on('SIGINT', onSig);
  });
}

export function syncTarget(v: Record<string, unknown>): { namespace: string; name: string; leaseNamespace: string | undefined } {
  const namespace = checkNamespace(str(v, 'kubevirt-namespace', 'KUBEVIRT_NAMESPACE') ?? 'kubevirt', '--kubevirt-namespace');
  const name = checkObjectName(str(v, 'kubevirt-name', 'KUBEVIRT_NAME') ?? 'kubevirt', '--kubevirt-name');
  const ln = str(v, 'lease-namespace', 'POD_NAMESPACE');
  return { namespace, name, leaseNamespace: ln ? checkNamespace(ln, '--lease-namespace') : undefined };
}

/**
 * `-f FILE -c NAME` (or env DEFAULT_VGPU_CONFIG): the file and the named
 * config in it; null without -f. `why` tells the user what -c is for.
 */
export function configFromFlags(v: Record<string, unknown>, why?: string): { file: ConfigFile; config: NamedConfig } | null {
  const file = loadConfigOrNull(v.file as string | undefined);
  if (!file) return null;
  const name = (v.config as string | undefined) ?? process.env.DEFAULT_VGPU_CONFIG;
  if (!name) throw new CliError(`-f FILE needs -c NAME${why ? `: ${why}` : ''}`);
  try {
    return { file, config: { name, entries: selectConfig(file, name), line: 0 } };
  } catch (err) {
    throw new CliError(messageOf(err), EXIT.BAD_INPUT);
  }
}
