-- Publish. KEYS: stream, meta, result ("" = no idempotency key).
-- ARGV: pubsub channel, publication, history size, history ttl ms, meta ttl ms (0 = keep),
--       epoch to use if the channel has none, idempotency ttl ms, "1" = keep history.
-- Returns {offset, epoch, suppressed (0/1)}.
local stream, meta, result = KEYS[1], KEYS[2], KEYS[3]
if result ~= '' then
  local prev = redis.call('hmget', result, 'e', 's')
  if prev[1] then
    return {tonumber(prev[2]) or 0, prev[1], 1}
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
if result ~= '' then
  redis.call('hset', result, 'e', epoch, 's', offset)
  redis.call('pexpire', result, ARGV[7])
end
return {offset, epoch, 0}
