-- Presence add. KEYS: expire zset, data hash. ARGV: ttl ms, expire-at (s), client, info.
redis.call('zadd', KEYS[1], ARGV[2], ARGV[3])
redis.call('hset', KEYS[2], ARGV[3], ARGV[4])
redis.call('pexpire', KEYS[1], ARGV[1])
redis.call('pexpire', KEYS[2], ARGV[1])
return 1
