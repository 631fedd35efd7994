-- Presence remove. KEYS: expire zset, data hash. ARGV: client.
redis.call('zrem', KEYS[1], ARGV[1])
redis.call('hdel', KEYS[2], ARGV[1])
return 1
