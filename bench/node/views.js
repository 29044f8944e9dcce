// express-session's "views" demo for the load benchmark, configured like the other
// servers (no resave, no saving of uninitialized sessions, no rolling, a signed
// browser-session cookie), on connect-redis or connect-pg-simple. The packages come from
// tests/node (npm ci --prefix tests/node).
//   node bench/node/views.js redis|pg PORT
'use strict';
const path = require('path');
const { createRequire } = require('module');
const need = createRequire(path.join(__dirname, '..', '..', 'tests', 'node', 'package.json'));
const express = need('express');
const session = need('express-session');

async function store(kind) {
  if (kind === 'redis') {
    const { createClient } = need('redis');
    const { RedisStore } = need('connect-redis');
    let url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
    if (!url.replace('redis://', '').includes('/')) url += '/15';
    const client = createClient({ url });
    await client.connect();
    return new RedisStore({ client, prefix: 'bench:e:' });
  }
  if (kind === 'pg') {
    const pg = need('pg');
    const PgStore = need('connect-pg-simple')(session);
    const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
    return new PgStore({ pool, tableName: 'session_express' });
  }
  throw new Error('store must be redis or pg');
}

async function main() {
  const [kind, port] = process.argv.slice(2);
  const app = express();
  app.use(session({
    secret: 'a benchmark secret that is long enough',
    store: await store(kind),
    resave: false,
    saveUninitialized: false,
  }));
  app.get('/', (req, res) => {
    req.session.views = (req.session.views || 0) + 1;
    res.send('views: ' + req.session.views);
  });
  app.get('/read', (req, res) => res.send('views: ' + (req.session.views || 0)));
  const server = app.listen(Number(port || 0), '127.0.0.1', () => console.log('listening ' + server.address().port));
}

main().catch((err) => { console.error(err); process.exit(1); });
