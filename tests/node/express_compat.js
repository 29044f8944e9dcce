// The reference: express-session 1.19 (on express 5) serving the same routes and flags
// as examples/src/compat.rs, on its MemoryStore, on Redis through connect-redis, or on
// PostgreSQL through connect-pg-simple. Used by tests/tests/express_differential.rs and
// the Node/Rust handoff tests.
'use strict';
const express = require('express');
const session = require('express-session');

const args = process.argv.slice(2);
const opts = {
  secrets: [], port: 0, host: '127.0.0.1', cookie: {}, resave: false, saveUninitialized: false, rolling: false,
  store: 'memory', redisUrl: process.env.REDIS_URL || 'redis://127.0.0.1:6379', prefix: 'sess:', ttl: undefined,
  pgUrl: process.env.DATABASE_URL || 'postgres://postgres:postgres@127.0.0.1:5432/sessions', table: 'session',
};
for (let i = 0; i < args.length; i++) {
  const flag = args[i];
  const next = () => args[++i];
  switch (flag) {
    case '--port': opts.port = Number(next()); break;
    case '--host': opts.host = next(); break;
    case '--store': opts.store = next(); break;
    case '--redis-url': opts.redisUrl = next(); break;
    case '--prefix': opts.prefix = next(); break;
    case '--ttl': opts.ttl = Number(next()); break;
    case '--pg-url': opts.pgUrl = next(); break;
    case '--table': opts.table = next(); break;
    case '--secret': opts.secrets.push(next()); break;
    case '--name': opts.name = next(); break;
    case '--max-age': opts.cookie.maxAge = Number(next()); break;
    case '--rolling': opts.rolling = true; break;
    case '--resave': opts.resave = true; break;
    case '--save-uninitialized': opts.saveUninitialized = true; break;
    case '--partitioned': opts.cookie.partitioned = true; break;
    case '--same-site': opts.cookie.sameSite = next(); break;
    case '--secure': { const v = next(); opts.cookie.secure = v === 'auto' ? 'auto' : v === 'true'; break; }
    case '--proxy': opts.proxy = next() === 'true'; break;
    case '--domain': opts.cookie.domain = next(); break;
    case '--path': opts.cookie.path = next(); break;
    case '--unset': opts.unset = next(); break;
    case '--http-only': opts.cookie.httpOnly = next() === 'true'; break;
    case '--priority': opts.cookie.priority = next(); break;
    default: console.error('unknown flag ' + flag); process.exit(2);
  }
}

async function makeStore() {
  switch (opts.store) {
    case 'memory': return new session.MemoryStore();
    case 'redis': {
      const { createClient } = require('redis');
      const { RedisStore } = require('connect-redis');
      const client = createClient({ url: opts.redisUrl });
      await client.connect();
      return new RedisStore({ client, prefix: opts.prefix, ttl: opts.ttl });
    }
    case 'pg': {
      const pg = require('pg');
      const PgStore = require('connect-pg-simple')(session);
      const pool = new pg.Pool({ connectionString: opts.pgUrl });
      return new PgStore({ pool, tableName: opts.table, ttl: opts.ttl });
    }
    default: console.error('unknown store ' + opts.store); process.exit(2);
  }
}

async function main() {
const app = express();
app.use(session({
  name: opts.name,
  secret: opts.secrets,
  store: await makeStore(),
  resave: opts.resave,
  saveUninitialized: opts.saveUninitialized,
  rolling: opts.rolling,
  unset: opts.unset,
  proxy: opts.proxy,
  cookie: opts.cookie,
}));

const data = (s) => { const o = {}; for (const k of Object.keys(s)) if (k !== 'cookie') o[k] = s[k]; return o; };
const fail = (res, err) => res.status(500).json({ error: err.message });

function routes(prefix) {
  const r = express.Router();
  r.use((req, res, next) => (req.session ? next() : res.json({ noSession: true })));
  r.get('/views', (req, res) => {
    req.session.views = (req.session.views || 0) + 1;
    res.json({ views: req.session.views, id: req.sessionID, maxAge: req.session.cookie.maxAge });
  });
  r.get('/set', (req, res) => {
    for (const [k, v] of Object.entries(req.query)) {
      let value; try { value = JSON.parse(v); } catch (e) { value = v; }
      req.session[k] = value;
    }
    res.json(data(req.session));
  });
  r.get('/get', (req, res) => res.json(data(req.session)));
  r.get('/regenerate', (req, res) => {
    const old = req.sessionID;
    req.session.regenerate((err) => (err ? fail(res, err) : res.json({ old, id: req.sessionID })));
  });
  r.get('/destroy', (req, res) => {
    const id = req.sessionID;
    req.session.destroy((err) => (err ? fail(res, err) : res.json({ destroyed: id })));
  });
  r.get('/id', (req, res) => res.type('text/plain').send(req.sessionID));
  r.get('/unset', (req, res) => { req.session = null; res.json({ unset: true }); });
  r.get('/reload', (req, res) => req.session.reload((err) => (err ? fail(res, err) : res.json(data(req.session)))));
  r.get('/save', (req, res) => req.session.save((err) => (err ? fail(res, err) : res.json(data(req.session)))));
  r.get('/touch', (req, res) => { req.session.touch(); res.json({ maxAge: req.session.cookie.maxAge }); });
  r.get('/cookie', (req, res) => {
    const q = req.query.maxAge;
    if (q === 'null' || q === undefined) req.session.cookie.maxAge = null;
    else if (Number.isNaN(Number(q))) return res.status(400).json({ error: 'maxAge must be a number' });
    else req.session.cookie.maxAge = Number(q);
    res.json({ maxAge: req.session.cookie.maxAge });
  });
  app.use(prefix || '/', (req, res, next) => next());
  return r;
}

const names = ['/views', '/set', '/get', '/regenerate', '/destroy', '/id', '/unset', '/reload', '/save', '/touch', '/cookie'];
const known = (p) => names.includes(p);
const router = routes('');
app.use((req, res, next) => {
  const prefix = opts.cookie.path && opts.cookie.path !== '/' ? opts.cookie.path.replace(/\/$/, '') : '';
  let rest = null;
  if (known(req.path)) rest = req.path;
  else if (prefix && req.path.startsWith(prefix + '/') && known(req.path.slice(prefix.length))) rest = req.path.slice(prefix.length);
  if (rest === null) return next();
  req.url = rest + (req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '');
  router(req, res, next);
});
app.use((req, res) => res.status(404).json({ notFound: req.path, hasSession: !!req.session }));
app.use((err, req, res, next) => res.status(500).json({ error: err.message }));

const server = app.listen(opts.port, opts.host, () => console.log('listening ' + server.address().port));
}

main().catch((err) => { console.error(err); process.exit(1); });
