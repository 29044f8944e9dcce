//! The Lua scripts of the store. Each touches one key, so that each runs atomically on
//! the node that holds the key, Cluster included; on a single node only, the rename and
//! the scripts that keep a user's set beside a session's write take a second key.
//!
//! No script re-encodes JSON: Redis's `cjson` rewrites numbers, escapes `/` and turns
//! `[]` into `{}`. The text is patched in Rust or by a scanner, and written only if it
//! is still the text that was read (`redis.sha1hex`). Only [`DESTROY_IF_USER`] decodes
//! a record with `cjson`, to read its user, and it writes nothing back.

use std::sync::LazyLock;

use redis::Script;

/// Text layout: apply a patch to the stored JSON text, atomically, without decoding it.
///
/// `ARGV[1]` is the TTL in seconds (≤ 0 deletes), `ARGV[2]` the cookie's JSON, `ARGV[3]`
/// the number of changes, then for each change its key as it is written between quotes
/// and its value's JSON (empty: remove the key). The top-level entries are found by a
/// scanner that jumps with `string.find` and never decodes a value; the text is
/// rebuilt exactly as `tessera::Patch::apply_to_json` rebuilds it: `{"cookie":…`, then
/// every other entry as `"key":value` with unchanged values copied byte for byte and
/// changed ones replaced (the last change of a key wins), then the added keys, each at
/// the place of its last change. (A test compares the two on generated texts.) Answers 0 when the key is missing, 1
/// when written, and -1 (writing nothing) for a text it does not read (a key with
/// escapes, or not a JSON object), which the store then patches by compare-and-set.
///
/// With a second key (single node only), the session is tied to a user: after writing,
/// the id (`ARGV` after the changes) joins the user's set `KEYS[2]`, which then lives at
/// least the milliseconds that follow, as [`INDEX`] does, in the same round trip.
pub(crate) static PATCH_TEXT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local text = redis.call('GET', KEYS[1])
if not text then return 0 end
local ttl = tonumber(ARGV[1])
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
local n = tonumber(ARGV[3])
local changes, last = {}, {}
for c = 0, n - 1 do
  local k, v = ARGV[4 + 2 * c], ARGV[5 + 2 * c]
  last[k] = c
  if v == '' then changes[k] = false else changes[k] = v end
end
local find, byte, sub = string.find, string.byte, string.sub
local function ws(j) return find(text, '[^ \t\n\r]', j) end
local function skip_string(j)
  while true do
    local k = find(text, '["\\]', j)
    if not k then return nil end
    if byte(text, k) == 34 then return k + 1 end
    j = k + 2
  end
end
local function skip_value(j)
  local c = byte(text, j)
  if c == 34 then return skip_string(j + 1) end
  if c == 123 or c == 91 then
    local depth = 0
    while true do
      local k = find(text, '["{}%[%]]', j)
      if not k then return nil end
      local b = byte(text, k)
      if b == 34 then
        j = skip_string(k + 1)
        if not j then return nil end
      elseif b == 123 or b == 91 then
        depth = depth + 1
        j = k + 1
      else
        depth = depth - 1
        if depth < 0 then return nil end
        j = k + 1
        if depth == 0 then return j end
      end
    end
  end
  local k = find(text, '[,}%] \t\n\r:]', j)
  if k == nil then k = #text + 1 end
  if k == j then return nil end
  return k
end
local out = {'{"cookie":', ARGV[2]}
local done = {}
local i = ws(1)
if not i or byte(text, i) ~= 123 then return -1 end
i = ws(i + 1)
if not i then return -1 end
if byte(text, i) == 125 then
  if ws(i + 1) then return -1 end
else
  while true do
    if byte(text, i) ~= 34 then return -1 end
    local q = find(text, '["\\]', i + 1)
    if not q or byte(text, q) ~= 34 then return -1 end
    local key = sub(text, i + 1, q - 1)
    local colon = ws(q + 1)
    if not colon or byte(text, colon) ~= 58 then return -1 end
    local vstart = ws(colon + 1)
    if not vstart then return -1 end
    local vend = skip_value(vstart)
    if not vend then return -1 end
    if key ~= 'cookie' then
      local change = changes[key]
      if change == nil then
        out[#out + 1] = ',"' .. key .. '":' .. sub(text, vstart, vend - 1)
      else
        done[key] = true
        if change then out[#out + 1] = ',"' .. key .. '":' .. change end
      end
    end
    local d = ws(vend)
    if not d then return -1 end
    local b = byte(text, d)
    if b == 44 then
      i = ws(d + 1)
      if not i then return -1 end
    elseif b == 125 then
      if ws(d + 1) then return -1 end
      break
    else
      return -1
    end
  end
end
for c = 0, n - 1 do
  local k = ARGV[4 + 2 * c]
  local change = changes[k]
  if last[k] == c and change and not done[k] and k ~= 'cookie' then
    out[#out + 1] = ',"' .. k .. '":' .. change
  end
end
out[#out + 1] = '}'
redis.call('SET', KEYS[1], table.concat(out), 'EX', ttl)
if KEYS[2] then
  local idx_ttl = tonumber(ARGV[5 + 2 * n])
  redis.call('SADD', KEYS[2], ARGV[4 + 2 * n])
  if redis.call('PTTL', KEYS[2]) < idx_ttl then
    redis.call('PEXPIRE', KEYS[2], idx_ttl)
  end
end
return 1
"#,
    )
});

/// Text layout: write `ARGV[2]` (with a TTL of `ARGV[3]` seconds; ≤ 0 deletes) only if
/// the stored text still hashes to `ARGV[1]`. Answers 0 when the key is missing, 1 when
/// written, or the current text when it changed since it was read.
pub(crate) static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if redis.sha1hex(current) ~= ARGV[1] then return current end
local ttl = tonumber(ARGV[3])
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
end
return 1
",
    )
});

/// Text layout: the value and its remaining TTL in milliseconds, in one round trip
/// (nil when the key is missing).
pub(crate) static GET_WITH_TTL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local text = redis.call('GET', KEYS[1])
if not text then return false end
return {text, redis.call('PTTL', KEYS[1])}
",
    )
});

/// Hash layout: the fields of the hash and its remaining TTL in milliseconds, in one
/// round trip.
pub(crate) static HASH_GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
return {redis.call('HGETALL', KEYS[1]), redis.call('PTTL', KEYS[1])}
",
    )
});

/// Hash layout: replace the whole hash with `ARGV[2..]` (field, value pairs) and expire
/// it after `ARGV[1]` milliseconds.
pub(crate) static HASH_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
",
    )
});

/// Hash layout: if the hash exists, set the field pairs from `ARGV[5]` on, delete the
/// `ARGV[2]` fields after them, and expire it after `ARGV[1]` milliseconds (≤ 0
/// deletes). Answers 0 when the key is missing, 1 when written. Never recreates it. With
/// a second key (single node only), the id `ARGV[3]` then joins the user's set
/// `KEYS[2]`, which lives at least `ARGV[4]` milliseconds, as [`INDEX`] does.
pub(crate) static HASH_PATCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ttl = tonumber(ARGV[1])
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
local removed = tonumber(ARGV[2])
local pairs_end = #ARGV - removed
for i = 5, pairs_end, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
for i = pairs_end + 1, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
if KEYS[2] then
  redis.call('SADD', KEYS[2], ARGV[3])
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
  end
end
return 1
",
    )
});

/// Single node: move `KEYS[1]` to `KEYS[2]` (keeping its TTL) if it exists.
pub(crate) static RENAME: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
",
    )
});

/// Cluster, first half of a move: take the key out (its `DUMP` and remaining TTL in
/// milliseconds) and delete it, atomically. Answers nil when it is missing.
pub(crate) static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local dump = redis.call('DUMP', KEYS[1])
if not dump then return false end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
return {dump, ttl}
",
    )
});

/// The per-user index (a set per user): add `ARGV[1]` to `KEYS[1]` and make the set live
/// at least `ARGV[2]` milliseconds, as long as the session it now holds.
pub(crate) static INDEX: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
",
    )
});

/// Single node, a touch of a session tied to a user, in one round trip: renew the
/// session `KEYS[1]` (`EXPIRE` by `ARGV[1]` seconds, or `PEXPIRE` by milliseconds when
/// `ARGV[2]` is `ms`) and, if it is live, keep it in its user's set `KEYS[2]` (`ARGV[3]`
/// the id, `ARGV[4]` the set's least lifetime in milliseconds). Answers the renewal's
/// 0 or 1.
pub(crate) static TOUCH_INDEXED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local renewed
if ARGV[2] == 'ms' then
  renewed = redis.call('PEXPIRE', KEYS[1], ARGV[1])
else
  renewed = redis.call('EXPIRE', KEYS[1], ARGV[1])
end
if renewed == 1 then
  redis.call('SADD', KEYS[2], ARGV[3])
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
  end
end
return renewed
",
    )
});

/// After a session tied to a user moved from the id `ARGV[3]` to `ARGV[1]`: keep the new
/// id in the user's set `KEYS[1]` (living at least `ARGV[2]` ms; a listing may have
/// pruned the id while the key was between its two names) and answer 1 if a revocation
/// marked either id meanwhile (a member `!<ms>:<id>`), else 0.
pub(crate) static ROTATED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local to, from = ':' .. ARGV[1], ':' .. ARGV[3]
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if string.sub(member, 1, 1) == '!' and
     (string.sub(member, -#to) == to or string.sub(member, -#from) == from) then
    return 1
  end
end
return 0
",
    )
});

/// A revocation's mark, before it deletes the session `ARGV[1]`: take the id out of the
/// user's set `KEYS[1]` and leave a tombstone `!<ARGV[2]>:<id>` (ARGV[2] the time in
/// milliseconds), which a move of that session in flight finds ([`ROTATED`]).
pub(crate) static REVOKE_MARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SADD', KEYS[1], '!' .. ARGV[2] .. ':' .. ARGV[1])
redis.call('SREM', KEYS[1], ARGV[1])
return 1
",
    )
});

/// Delete the session `KEYS[1]` if its record is tied to the user `ARGV[1]` (its
/// `_tessera` entry says so); `ARGV[2]` is the layout (`text` or `hash`). Answers 1 when
/// deleted, 0 when missing or tied to nobody or someone else.
pub(crate) static DESTROY_IF_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local meta
if ARGV[2] == 'hash' then
  local text = redis.call('HGET', KEYS[1], '_tessera')
  if not text then return 0 end
  local ok, decoded = pcall(cjson.decode, text)
  if ok then meta = decoded end
else
  local text = redis.call('GET', KEYS[1])
  if not text then return 0 end
  local ok, decoded = pcall(cjson.decode, text)
  if ok and type(decoded) == 'table' then meta = decoded['_tessera'] end
end
if type(meta) == 'table' and meta['user'] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
",
    )
});
