/**
 * The index's writes as Lua scripts, so that each one is atomic in Redis: the
 * blob copy, the record, the sorted id set, blob reference counts, the change
 * counter and the pub/sub notice all change together or not at all.
 *
 * Keys: 1 index (hash id → record JSON), 2 ids (sorted set, score 0, ordered
 * by id), 3 refs (hash sha → number of ids pointing at it), 4 seeded (hash
 * id → sha of the folder content imported), 5 epoch (counter).
 */

const RELEASE = `
local function release(sha)
  local n = redis.call('HINCRBY', KEYS[3], sha, -1)
  if n <= 0 then
    redis.call('HDEL', KEYS[3], sha)
    redis.call('DEL', ARGV_BLOB_PREFIX .. sha)
  end
end
`

/** ARGV: id, record JSON, mode (create|upsert|seed|replace), blob bytes, blob key prefix, channel, seed sha, now, version replaced. */
export const COMMIT_SCRIPT = `
local ARGV_BLOB_PREFIX = ARGV[5]
${RELEASE}
local id = ARGV[1]
local mode = ARGV[3]
local cur = redis.call('HGET', KEYS[1], id)
local old = nil
if cur then old = cjson.decode(cur) end
if mode == 'create' and old then return {'exists', cur} end
if mode == 'replace' then
  if not old then return {'conflict', ''} end
  if tostring(old.version) ~= ARGV[9] then return {'conflict', cur} end
end
if mode == 'seed' then
  if redis.call('HGET', KEYS[4], id) == ARGV[7] then return {'unchanged'} end
  if old and old.source == 'upload' then return {'unchanged'} end
  redis.call('HSET', KEYS[4], id, ARGV[7])
end
local rec = cjson.decode(ARGV[2])
if old then
  rec.version = old.version + 1
  rec.created_at = old.created_at
else
  rec.version = 1
end
local blobKey = ARGV_BLOB_PREFIX .. rec.sha256
if redis.call('EXISTS', blobKey) == 0 then redis.call('SET', blobKey, ARGV[4]) end
redis.call('HINCRBY', KEYS[3], rec.sha256, 1)
if old then release(old.sha256) end
local encoded = cjson.encode(rec)
redis.call('HSET', KEYS[1], id, encoded)
redis.call('ZADD', KEYS[2], 0, id)
redis.call('INCR', KEYS[5])
redis.call('PUBLISH', ARGV[6], id)
return {'written', encoded, cur or ''}
`

/** ARGV: id, (unused), (unused), (unused), blob key prefix, channel. */
export const REMOVE_SCRIPT = `
local ARGV_BLOB_PREFIX = ARGV[5]
${RELEASE}
local id = ARGV[1]
local cur = redis.call('HGET', KEYS[1], id)
if not cur then return false end
local old = cjson.decode(cur)
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
release(old.sha256)
redis.call('INCR', KEYS[5])
redis.call('PUBLISH', ARGV[6], id)
return cur
`
