-- Publish. KEYS: stream, meta, result (always given, so that in a cluster every key is in
-- the channel's slot; used only with an idempotency key).
-- ARGV: pubsub channel, publication, history size, history ttl ms, meta ttl ms (0 = keep),
--       epoch to use if the channel has none, idempotency ttl ms ("0" = no idempotency
--       key), "1" = keep history,
--       version ("0" = none), version epoch.
-- Returns {offset, epoch, suppressed as a repeat (0/1), suppressed as stale (0/1)}.
-- With history, a version not above the meta hash's "v" (same "ve", or no epoch given)
-- is stale: the top is returned and nothing is written; else "v"/"ve" are stored (the
-- fields centrifuge's Redis broker uses).
local stream, meta, result = KEYS[1], KEYS[2], KEYS[3]
local idempotent = ARGV[7] ~= '0'
if idempotent then
  local prev = redis.call('hmget', result, 'e', 's')
  if prev[1] then
    return {tonumber(prev[2]) or 0, prev[1], 1, 0}
  end
end
local offset, epoch = 0, ''
if ARGV[8] == '1' then
  epoch = redis.call('hget', meta, 'e')
  if not epoch then
    epoch = ARGV[6]
    redis.call('del', stream)
    redis.call('hset', meta, 'e', epoch)
  end
  if ARGV[9] ~= '0' then
    local prev = redis.call('hmget', meta, 'v', 've', 's')
    if prev[1] and (ARGV[10] == '' or ARGV[10] == prev[2])
        and tonumber(prev[1]) >= tonumber(ARGV[9]) then
      return {tonumber(prev[3]) or 0, epoch, 0, 1}
    end
    redis.call('hset', meta, 'v', ARGV[9], 've', ARGV[10])
  end
  offset = redis.call('hincrby', meta, 's', 1)
  if tonumber(ARGV[5]) > 0 then
    redis.call('pexpire', meta, ARGV[5])
  end
  redis.call('xadd', stream, 'MAXLEN', ARGV[3], offset .. '-0', 'd', ARGV[2])
  redis.call('pexpire', stream, ARGV[4])
  redis.call('publish', ARGV[1], '__p1:' .. offset .. ':' .. epoch .. '__' .. ARGV[2])
else
  redis.call('publish', ARGV[1], ARGV[2])
end
if idempotent then
  redis.call('hset', result, 'e', epoch, 's', offset)
  redis.call('pexpire', result, ARGV[7])
end
return {offset, epoch, 0, 0}
