// A real OpenID provider (the certified npm package oidc-provider) for
// Sluice's authentication tests. Usage:
//
//   node oidc-provider.mjs <file URL of oidc-provider's lib/index.js>
//
// It listens on 127.0.0.1 at a port the system picks and prints
// "issuer <url>" once ready. Access tokens are JWTs (RFC 9068) for whatever
// resource indicator (RFC 8707) the client asks for, with the scope
// "mcp:tools". Clients: "agent" and "other" (client credentials and
// authorization code with PKCE), "short" (client credentials, tokens live
// 2 seconds). Logins and consents are granted at once, as user "alice".
// POST /test/rotate replaces the signing key with a new one (new kid).
import http from 'node:http';
import crypto from 'node:crypto';

const { default: Provider } = await import(process.argv[2]);

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
}

const clients = [
  {
    client_id: 'agent', client_secret: 'agent-secret', application_type: 'native',
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token'], response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback'],
  },
  {
    client_id: 'other', client_secret: 'other-secret', application_type: 'native',
    grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
  },
  {
    client_id: 'short', client_secret: 'short-secret', application_type: 'native',
    grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
  },
];

let provider;

function newProvider(issuer, key) {
  const p = new Provider(issuer, {
    clients,
    jwks: { keys: [key] },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => oneOf,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => ({
          scope: 'mcp:tools',
          audience: resource,
          accessTokenTTL: client.clientId === 'short' ? 2 : 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: () => ({ groups: ['analysts', 'eng'], org: { team: 'blue' } }),
    findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  });
  return p;
}

// interaction completes logins and consents without a human.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: 'alice' } }, { mergeWithLastSubmission: false });
    return;
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/test/rotate') {
    provider = newProvider(provider.issuer, signingKey());
    res.writeHead(204).end();
    return;
  }
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
    });
    return;
  }
  provider.callback()(req, res);
});

server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  provider = newProvider(issuer, signingKey());
  process.stdout.write(`issuer ${issuer}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
