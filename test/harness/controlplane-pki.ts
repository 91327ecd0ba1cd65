// Test PKI for the control plane: a throw-away CA, the kube-apiserver serving certificate,
// client certificates, and the service-account signing key pair. Node 20 cannot sign X.509
// certificates itself, so certificates are made with the `openssl` command (Debian package
// `openssl`); keys and certificates live only in the control plane's temporary directory.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  ca: CertFiles;
  caPem: string;
  serving: CertFiles;
  admin: CertFiles;
  saPublicKey: string;
  saSigningKey: string;
  /** Issues a client certificate for `cn`/`groups` into the PKI directory. */
  clientCert(fileStem: string, cn: string, groups: string[]): CertFiles;
}

// A minimal config so that no distribution default (v3_ca, policy sections) leaks in.
const OPENSSL_CNF = '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n';
const FILE_STEM = /^[a-z0-9][a-z0-9-]{0,62}$/;
// Subject values are written into an openssl -subj string: allow only what needs no escaping.
const SUBJECT_VALUE = /^[A-Za-z0-9:._@-]{1,128}$/;

function openssl(dir: string, args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OPENSSL_CONF: join(dir, 'openssl.cnf') } });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') {
      throw new Error(
        'the `openssl` command was not found; the control-plane harness needs it to make its test CA and certificates. ' +
          'Install it with `apt-get install -y openssl` (Debian/Ubuntu) and re-run the tests.',
        { cause: e },
      );
    }
    throw new Error(`openssl ${args.join(' ')} failed in ${dir}: ${err.stderr?.toString().trim() ?? err.message}`, { cause: e });
  }
}

function subject(cn: string, groups: string[]): string {
  for (const v of [cn, ...groups]) {
    if (!SUBJECT_VALUE.test(v)) throw new Error(`certificate subject value ${JSON.stringify(v)} must match ${SUBJECT_VALUE}`);
  }
  return `/CN=${cn}${groups.map((g) => `/O=${g}`).join('')}`;
}

const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makePki(dir: string): Pki {
  writeFileSync(join(dir, 'openssl.cnf'), OPENSSL_CNF);
  const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  openssl(dir, [
    'req', '-x509', ...KEY_ARGS, '-keyout', ca.key, '-out', ca.cert, '-days', '2',
    '-subj', '/CN=vmgpu-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);

  const issue = (stem: string, subj: string, ext: string[]): CertFiles => {
    if (!FILE_STEM.test(stem)) throw new Error(`certificate file name ${JSON.stringify(stem)} must match ${FILE_STEM}`);
    const out = { cert: join(dir, `${stem}.crt`), key: join(dir, `${stem}.key`) };
    openssl(dir, [
      'req', '-x509', ...KEY_ARGS, '-keyout', out.key, '-out', out.cert, '-days', '2',
      '-CA', ca.cert, '-CAkey', ca.key, '-subj', subj,
      '-addext', 'basicConstraints=critical,CA:FALSE',
      '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment',
      ...ext.flatMap((e) => ['-addext', e]),
    ]);
    return out;
  };

  const serving = issue('apiserver', '/CN=kube-apiserver', [
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc',
  ]);
  const clientCert = (stem: string, cn: string, groups: string[]): CertFiles =>
    issue(stem, subject(cn, groups), ['extendedKeyUsage=clientAuth']);
  const admin = clientCert('admin', 'vmgpu-test-admin', ['system:masters']);

  // Service-account token signing key: ECDSA P-256 (tokens are ES256), much quicker to make than RSA.
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const saPublicKey = join(dir, 'sa.pub');
  const saSigningKey = join(dir, 'sa.key');
  writeFileSync(saPublicKey, publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(saSigningKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });

  return { dir, ca, caPem: readFileSync(ca.cert, 'utf8'), serving, admin, saPublicKey, saSigningKey, clientCert };
}
