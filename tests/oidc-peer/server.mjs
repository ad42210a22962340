// The OpenID provider the auth tests run against: oidc-provider (a certified OpenID Connect
// provider) with the client-credentials grant issuing JWT access tokens (RFC 9068, `typ: at+jwt`)
// for one resource server, `urn:trdscreen`, to two clients with different scopes. Started by
// scripts/oidc-peer; loopback only; test secrets only.
//
//   node server.mjs DIR
//
// Makes an RSA and an EC P-256 signing key at each start, writes their private PEMs to DIR/keys/
// (the tests sign hand-made tokens with them, so that only the claim under test is wrong), with
// rs256.pub.pem and stranger.pem (a key it never publishes), listens
// on a free loopback port and writes the issuer URL to DIR/issuer once it answers.
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import Provider from 'oidc-provider';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node server.mjs DIR');
  process.exit(2);
}
mkdirSync(join(dir, 'keys'), { recursive: true, mode: 0o700 });

// The permissions of trdscreen (docs/security.md).
const SCOPES = ['screening.read', 'screening.write', 'population.screen', 'bundle.evaluate'];
const RESOURCE = 'urn:trdscreen';
// Two clients: a clinician-facing app that reads screenings and evaluates Bundles, and the
// nightly runner that screens populations and writes back. Each token is signed with another
// algorithm so that both key types are exercised.
const CLIENTS = [
  {
    client_id: 'clinic-app',
    client_secret: 'clinic-app-test-secret',
    scope: 'screening.read bundle.evaluate',
    alg: 'RS256',
  },
  {
    client_id: 'batch-runner',
    client_secret: 'batch-runner-test-secret',
    scope: 'screening.read screening.write population.screen',
    alg: 'ES256',
  },
];

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = (pair, kid, alg) => ({ ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' });
writeFileSync(join(dir, 'keys', 'rs256.pem'), rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
writeFileSync(join(dir, 'keys', 'es256.pem'), ec.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
// The RSA key's public half as PEM (what an attacker has, for the HMAC-with-the-public-key case),
// and an RSA key the provider never publishes (for wrong signatures and unknown key ids).
writeFileSync(join(dir, 'keys', 'rs256.pub.pem'), rsa.publicKey.export({ format: 'pem', type: 'spki' }));
const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
writeFileSync(join(dir, 'keys', 'stranger.pem'), stranger.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const algOf = new Map(CLIENTS.map((c) => [c.client_id, c.alg]));
  const provider = new Provider(issuer, {
    clients: CLIENTS.map(({ alg, ...c }) => ({
      ...c,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys: [jwk(rsa, 'rs-1', 'RS256'), jwk(ec, 'ec-1', 'ES256')] },
    scopes: SCOPES,
    cookies: { keys: ['oidc-peer-test-cookie-key'] },
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, indicator, client) => {
          if (indicator !== RESOURCE) throw new Provider.errors.InvalidTarget();
          return {
            scope: SCOPES.join(' '),
            audience: RESOURCE,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: algOf.get(client.clientId) } },
          };
        },
      },
    },
  });
  provider.proxy = false;
  server.on('request', provider.callback());
  const tmp = join(dir, 'issuer.tmp');
  writeFileSync(tmp, `${issuer}\n`);
  renameSync(tmp, join(dir, 'issuer'));
  console.log(`oidc-peer: ${issuer}`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
