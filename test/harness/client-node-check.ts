// Imported before @kubernetes/client-node: fails with a clear message instead of an
// undici stack trace when the installed client-node cannot run on this Node version.
// @kubernetes/client-node 2.x uses undici 8, which needs Node >= 22.19 (zlib zstd,
// structuredClone marks); 1.x (node-fetch) runs on Node 20.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function clientNodeVersion(): string | undefined {
  try {
    const pkgPath = require.resolve('@kubernetes/client-node/package.json');
    return (JSON.parse(readFileSync(pkgPath, 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

const [nodeMajor = 0, nodeMinor = 0] = process.versions.node.split('.').map(Number);
const clientVersion = clientNodeVersion();
const clientMajor = Number(clientVersion?.split('.')[0] ?? 0);
if (clientMajor >= 2 && (nodeMajor < 22 || (nodeMajor === 22 && nodeMinor < 19))) {
  throw new Error(
    `@kubernetes/client-node ${clientVersion} cannot load on Node ${process.versions.node}: it depends on undici 8, which needs Node >= 22.19. ` +
      'Either pin "@kubernetes/client-node": "^1.4.0" in package.json (same API, runs on Node 20) and run `npm install`, or run the tests with Node >= 22.19.',
  );
}
