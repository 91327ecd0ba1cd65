/**
 * Where the config file comes from: a mounted ConfigMap (the kubelet swaps
 * the `..data` symlink atomically, so the directory is watched and the
 * content hashed: only a real change is reported), or a ConfigMap read
 * through the API (list + watch of that one object).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MAX_CONFIG_BYTES } from '../../spec/load.js';
import type { Logger } from '../kube/logger.js';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { Informer } from '../kube/informer.js';
import { checkNamespace, checkObjectName, type Kube } from '../kube/kube.js';
import { messageOf } from '../errors.js';
import { InputError } from '../../model/errors.js';
import { readTextBounded } from '../../io/files.js';

export interface ConfigSnapshot {
  text: string;
  fileName: string;
  hash: string;
}

export interface ConfigSource {
  current(): ConfigSnapshot | null;
  /** Why there is no config, when current() is null. */
  problem(): string | null;
  start(onChange: (c: ConfigSnapshot | null) => void): void;
  stop(): Promise<void>;
}

const hashOf = (text: string) => createHash('sha256').update(text).digest('hex');

export class FileConfigSource implements ConfigSource {
  private snap: ConfigSnapshot | null = null;
  private err: string | null = null;
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private onChange: ((c: ConfigSnapshot | null) => void) | null = null;

  constructor(
    readonly file: string,
    private readonly logger: Logger,
    private readonly fallbackIntervalMs = 30_000,
  ) {
    this.read();
  }

  current(): ConfigSnapshot | null {
    return this.snap;
  }
  problem(): string | null {
    return this.err;
  }

  /** Re-read the file; returns true when its content changed. */
  read(): boolean {
    let text: string | null = null;
    try {
      text = readTextBounded(this.file, MAX_CONFIG_BYTES);
      this.err = null;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      this.err = `cannot read the config file ${this.file}: ${code === 'ENOENT' ? 'it does not exist (is the ConfigMap mounted? see --config-file)' : messageOf(err)}`;
    }
    const next = text === null ? null : { text, fileName: this.file, hash: hashOf(text) };
    if ((next?.hash ?? null) === (this.snap?.hash ?? null)) return false;
    this.snap = next;
    return true;
  }

  start(onChange: (c: ConfigSnapshot | null) => void): void {
    this.onChange = onChange;
    const dir = path.dirname(this.file);
    const check = () => {
      if (this.read()) {
        this.logger.info('config file changed', { file: this.file, hash: this.snap?.hash.slice(0, 12) ?? null, problem: this.err });
        this.onChange?.(this.snap);
      }
    };
    try {
      // The kubelet replaces `..data` (a symlink) by rename: watch the directory, not the file.
      this.watcher = fs.watch(dir, { persistent: false }, () => {
        if (this.debounce) clearTimeout(this.debounce);
        this.debounce = setTimeout(check, 20);
      });
      this.watcher.on('error', (err) => this.logger.warn('watching the config directory failed; re-reading it periodically', { dir, error: String(err) }));
    } catch (err) {
      this.logger.warn('cannot watch the config directory; re-reading it periodically', { dir, error: String(err) });
    }
    // A slow local re-read guards against missed inotify events (no API traffic).
    this.timer = setInterval(check, this.fallbackIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
  }
}

const CONFIG_MAP_KEY = 'config.yaml';

/** `NAMESPACE/NAME` (of `flag`: --config-map, --catalog-map) -> parts, validated. */
export function parseConfigMapRef(ref: string, flag = '--config-map'): { namespace: string; name: string } {
  const [ns, name, extra] = ref.split('/');
  if (!ns || !name || extra !== undefined) throw new InputError(`${flag} ${JSON.stringify(ref)}: give NAMESPACE/NAME`);
  return { namespace: checkNamespace(ns, `${flag} namespace`), name: checkObjectName(name, `${flag} name`) };
}

export class ConfigMapSource implements ConfigSource {
  private snap: ConfigSnapshot | null = null;
  private err: string | null = 'the ConfigMap has not been read yet (is the API server reachable?)';
  private informer: Informer<V1ConfigMap> | null = null;

  constructor(
    private readonly kube: Kube,
    private readonly ref: { namespace: string; name: string },
    private readonly logger: Logger,
  ) {}

  current(): ConfigSnapshot | null {
    return this.snap;
  }
  problem(): string | null {
    return this.err;
  }

  start(onChange: (c: ConfigSnapshot | null) => void): void {
    const where = `ConfigMap ${this.ref.namespace}/${this.ref.name}`;
    const { namespace, name } = this.ref;
    const fieldSelector = `metadata.name=${name}`;
    this.informer = new Informer<V1ConfigMap>(this.kube, {
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      list: () => this.kube.core.listNamespacedConfigMap({ namespace, fieldSelector }),
      fieldSelector,
      onChange: (objects) => {
        const cm = objects.find((o) => o.metadata?.name === name);
        const text = cm?.data?.[CONFIG_MAP_KEY];
        this.err = cm ? (text === undefined ? `${where} has no key ${CONFIG_MAP_KEY}` : null) : `${where} does not exist`;
        const next = text === undefined ? null : { text, fileName: `${where} key ${CONFIG_MAP_KEY}`, hash: hashOf(text) };
        if ((next?.hash ?? null) === (this.snap?.hash ?? null)) return;
        this.snap = next;
        this.logger.info('config map changed', { configMap: `${namespace}/${name}`, problem: this.err });
        onChange(this.snap);
      },
      onError: (err, attempt) => this.logger.warn('reading the config map failed; retrying', { attempt, error: err.message }),
    });
    this.informer.start();
  }

  async stop(): Promise<void> {
    await this.informer?.stop();
  }
}
