// The agent's API access on @kubernetes/client-node: credential errors that say what
// to fix, our User-Agent and request deadline on every call (typed and watch), request
// counting, and API errors read back as one line. Served by a local HTTP server that
// records what arrives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import { apiStatus, describeApiError, Kube, KubeConfigError, loadKubeConfig } from '../../../../src/serve/kube/kube.js';
import { Informer } from '../../../../src/serve/kube/informer.js';
import { until } from '../../../support/wait.js';

function kubeconfig(body: string): { file: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'vmgpu-kubeconfig-'));
  const file = join(dir, 'config');
  writeFileSync(file, body);
  return { file, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const CONFIG = (current: string, user = '{ token: abc }') => `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: 'https://127.0.0.1:6443' } }]
users: [{ name: u, user: ${user} }]
contexts: [{ name: x, context: { cluster: c, user: u } }]
current-context: ${current}
`;

test('loadKubeConfig: a missing file, no current context, and no pod each say what to do', () => {
  assert.throws(() => loadKubeConfig('/nonexistent/kubeconfig'), (e: unknown) => e instanceof KubeConfigError && /cannot read the kubeconfig \/nonexistent\/kubeconfig/.test(e.message));
  const k = kubeconfig(CONFIG('""'));
  try {
    assert.throws(() => loadKubeConfig(k.file), /no current-context; set one with kubectl config use-context/);
  } finally {
    k.done();
  }
  const saved = process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBERNETES_SERVICE_HOST;
  try {
    assert.throws(() => loadKubeConfig(undefined), /not running in a pod \(KUBERNETES_SERVICE_HOST is unset\): pass --kubeconfig FILE/);
  } finally {
    if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
  }
});

test('loadKubeConfig: exec credential plugins (EKS, GKE) are accepted, since the library runs them', () => {
  const k = kubeconfig(CONFIG('x', "{ exec: { apiVersion: client.authentication.k8s.io/v1, command: /bin/true, interactiveMode: Never } }"));
  try {
    const kc = loadKubeConfig(k.file);
    assert.equal(kc.getCurrentCluster()?.server, 'https://127.0.0.1:6443');
    assert.ok(kc.getCurrentUser()?.exec);
  } finally {
    k.done();
  }
});

test('describeApiError and apiStatus read the API server answer, not the library dump', () => {
  const body = JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'Forbidden', code: 403, message: 'nodes "b" is forbidden: only the own node' });
  const e = new ApiException(403, 'Unknown API Status Code!', body, { 'content-type': 'application/json' });
  assert.equal(describeApiError(e), 'HTTP 403 Forbidden: nodes "b" is forbidden: only the own node');
  assert.equal(apiStatus(e), 403);
  assert.equal(describeApiError(new ApiException(401, 'Unauthorized', undefined, {})), 'HTTP 401: Unauthorized');
  assert.equal(apiStatus(Object.assign(new Error('Gone'), { statusCode: 410 })), 410, 'a failed watch carries statusCode');
  assert.equal(apiStatus(new Error('ECONNREFUSED')), undefined);
  assert.equal(describeApiError(new Error('connect ECONNREFUSED 127.0.0.1:1')), 'connect ECONNREFUSED 127.0.0.1:1');
});

interface Seen {
  method: string;
  url: string;
  userAgent: string;
}

async function fakeApiServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; kc: KubeConfig; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', userAgent: String(req.headers['user-agent']) });
    handle(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const kc = new KubeConfig();
  // Plain HTTP needs skipTLSVerify in client-node; the point here is what we send.
  kc.loadFromOptions({ clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }], users: [{ name: 'u', token: 't0k3n' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
  return { server, kc, seen };
}

const node = (name: string, rv: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, resourceVersion: rv, labels: { a: 'b' } } });

test('every request, typed or watch, carries our User-Agent and is counted by verb; the watch asks for bookmarks', async () => {
  let watchRes: ServerResponse | null = null;
  const { server, kc, seen } = await fakeApiServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.setHeader('content-type', 'application/json');
    if (url.searchParams.get('watch') === 'true') {
      res.writeHead(200);
      res.write(`${JSON.stringify({ type: 'MODIFIED', object: node('n1', '12') })}\n`);
      watchRes = res;
      return;
    }
    if (url.pathname === '/api/v1/nodes') {
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'NodeList', metadata: { resourceVersion: '10' }, items: [node('n1', '10')] }));
      return;
    }
    res.end(JSON.stringify(node('n1', '10')));
  });
  const kube = new Kube(kc, { userAgent: 'vmgpu-agent/unit' });
  const versions: string[] = [];
  const inf = new Informer(kube, {
    path: '/api/v1/nodes',
    list: () => kube.core.listNode({ fieldSelector: 'metadata.name=n1' }),
    fieldSelector: 'metadata.name=n1',
    onChange: (objs) => versions.push(objs.map((o) => o.metadata?.resourceVersion).join(',')),
  });
  try {
    await kube.core.readNode({ name: 'n1' });
    inf.start();
    await until(() => versions.includes('12'), 5000);
    assert.ok(versions.includes('10') && versions.includes('12'), `list then watch event reached onChange: ${versions.join(' ')}`);
    assert.ok(seen.length >= 3);
    for (const s of seen) assert.equal(s.userAgent, 'vmgpu-agent/unit', `${s.method} ${s.url}`);
    const watch = seen.find((s) => s.url.includes('watch=true'))!;
    const q = new URL(watch.url, 'http://x').searchParams;
    assert.equal(q.get('allowWatchBookmarks'), 'true');
    assert.equal(q.get('resourceVersion'), '10', 'the watch starts at the list resourceVersion');
    assert.equal(q.get('fieldSelector'), 'metadata.name=n1');
    assert.ok(Number(q.get('timeoutSeconds')) >= 1800);
    assert.deepEqual(kube.stats.byVerb, { GET: 2, WATCH: 1 });
    assert.equal(inf.stats.lists, 1);
  } finally {
    await inf.stop();
    (watchRes as ServerResponse | null)?.end();
    server.closeAllConnections();
    server.close();
  }
});

test('a request the API server never answers fails at the deadline, with the informer retrying on its own', async () => {
  const { server, kc } = await fakeApiServer(() => {
    /* never answer */
  });
  const kube = new Kube(kc, { userAgent: 'vmgpu-agent/unit', requestTimeoutMs: 200 });
  try {
    const t0 = Date.now();
    await assert.rejects(kube.core.readNode({ name: 'n1' }), /abort/i);
    assert.ok(Date.now() - t0 < 3000, 'the deadline applies');
    const errors: number[] = [];
    const inf = new Informer(kube, {
      path: '/api/v1/nodes',
      list: () => kube.core.listNode(),
      onChange: () => {},
      onError: (_e, attempt) => errors.push(attempt),
      backoffInitialMs: 20,
      backoffMaxMs: 50,
    });
    inf.start();
    await until(() => errors.length >= 3, 5000);
    await inf.stop();
    assert.deepEqual(errors.slice(0, 3), [1, 2, 3], 'each failed LIST is reported and retried with a growing attempt count');
    assert.equal(inf.stats.lists >= 3, true);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
