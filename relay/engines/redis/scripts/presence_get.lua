-- Presence read. KEYS: expire zset, data hash. ARGV: now (s). Purges expired entries.
local expired = redis.call('zrangebyscore', KEYS[1], '0', ARGV[1])
if #expired > 0 then
  redis.call('zremrangebyscore', KEYS[1], '0', ARGV[1])
  redis.call('hdel', KEYS[2], unpack(expired))
end
return redis.call('hgetall', KEYS[2])
