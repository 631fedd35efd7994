-- History. KEYS: stream, meta.
-- ARGV: "1" = read entries, count (<= 0 = all), "1" = reverse, meta ttl ms (0 = keep),
--       epoch to use if the channel has none, since epoch ("" = none), range start id,
--       range end id ("" = empty range).
-- Returns {top offset, epoch, entries}.
local stream, meta = KEYS[1], KEYS[2]
local epoch = redis.call('hget', meta, 'e')
if not epoch then
  epoch = ARGV[5]
  redis.call('del', stream)
  redis.call('hset', meta, 'e', epoch)
end
local top = tonumber(redis.call('hget', meta, 's')) or 0
if tonumber(ARGV[4]) > 0 then
  redis.call('pexpire', meta, ARGV[4])
end
if ARGV[1] ~= '1' or ARGV[8] == '' or (ARGV[6] ~= '' and ARGV[6] ~= epoch) then
  return {top, epoch, {}}
end
local cmd = 'xrange'
if ARGV[3] == '1' then cmd = 'xrevrange' end
local entries
if tonumber(ARGV[2]) > 0 then
  entries = redis.call(cmd, stream, ARGV[7], ARGV[8], 'COUNT', ARGV[2])
else
  entries = redis.call(cmd, stream, ARGV[7], ARGV[8])
end
return {top, epoch, entries}
