//! The Lua scripts of the store. Each touches one key (or, for the single-node rename,
//! two), so that each runs atomically on the node that holds the key, Cluster included.
//!
//! No script decodes or re-encodes JSON: Redis's `cjson` rewrites numbers, escapes `/`
//! and turns `[]` into `{}`. The text is patched in Rust and written only if it is still
//! the text that was read (`redis.sha1hex`).

use std::sync::LazyLock;

use redis::Script;

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

/// Hash layout: if the hash exists, set the `ARGV[3]` field pairs that follow, delete
/// the `ARGV[2]` fields after them, and expire it after `ARGV[1]` milliseconds (≤ 0
/// deletes). Answers 0 when the key is missing, 1 when written. Never recreates it.
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
for i = 3, pairs_end, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
for i = pairs_end + 1, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
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
