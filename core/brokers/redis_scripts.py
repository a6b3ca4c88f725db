"""The Lua scripts behind Redis presence and sessions (see ``core.brokers.redis_state``).

Each runs atomically in Redis. Times are Redis server time in microseconds, so the
clocks of the server hosts do not matter; numbers are formatted with ``%.0f``
because Lua's default formatting would round them.

Members: presence ``"<node> <connection> <user>"``, sessions ``"<node> <connection>"``;
the score is the arrival time. ``wsgen:nodes`` scores are each node's deadline.
"""

from __future__ import annotations

# Every script starts with the server's time and the liveness helpers.
PRELUDE = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function num(x) return string.format('%.0f', x) end
local live = {}
local function is_live(nodes, nid)
  local v = live[nid]
  if v == nil then
    local s = redis.call('ZSCORE', nodes, nid)
    v = (s and tonumber(s) >= now) or false
    live[nid] = v
  end
  return v
end
local function user_of(m) return string.match(m, '^%S+ %S+ (.*)$') end
-- The live entries of key; dead ones are deleted. For a presence key, each user left
-- with no live entry (but `except`) is queued on `departures` as "<channel>\n<user>".
local function prune(key, nodes, departures, except)
  local out, gone, alive = {}, {}, {}
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    local nid = string.match(m, '^(%S+) ')
    local user = user_of(m)
    if nid and is_live(nodes, nid) then
      out[#out + 1] = m
      if user then alive[user] = true end
    else
      redis.call('ZREM', key, m)
      if user then gone[user] = true end
    end
  end
  local prefix = ARGV[#ARGV]
  if string.sub(key, 1, #prefix) == prefix then
    local channel = string.sub(key, #prefix + 1)
    for user in pairs(gone) do
      if not alive[user] and user ~= except then
        redis.call('RPUSH', departures, channel .. '\n' .. user)
      end
    end
  end
  return out
end
local function conn_of(m) return string.match(m, '^%S+ (%S+)') end
local function owns(entries, nid)
  for _, m in ipairs(entries) do
    if string.sub(m, 1, #nid + 1) == nid .. ' ' then return true end
  end
  return false
end
"""

# Scripts that prune take KEYS (key, nodes, node keys, departures) and, as their
# last ARGV, the presence key prefix.

# ARGV: member, user. -> 1 when the user's first.
JOIN = """
local first = 1
for _, m in ipairs(prune(KEYS[1], KEYS[2], KEYS[4], ARGV[2])) do
  if m ~= ARGV[1] and user_of(m) == ARGV[2] then first = 0 end
end
redis.call('ZADD', KEYS[1], 'NX', num(now), ARGV[1])
redis.call('SADD', KEYS[3], KEYS[1])
return first
"""

# ARGV: member, user, node. -> 1 when the user's last.
LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
local entries = prune(KEYS[1], KEYS[2], KEYS[4], ARGV[2])
if not owns(entries, ARGV[3]) then redis.call('SREM', KEYS[3], KEYS[1]) end
for _, m in ipairs(entries) do
  if user_of(m) == ARGV[2] then return 0 end
end
return 1
"""

# -> distinct users, in the order they arrived.
MEMBERS = """
local seen, out = {}, {}
for _, m in ipairs(prune(KEYS[1], KEYS[2], KEYS[4], nil)) do
  local u = user_of(m)
  if not seen[u] then seen[u] = true; out[#out + 1] = u end
end
return out
"""

# ARGV: member. -> connection ids, oldest first.
SESSIONS_ADD = """
prune(KEYS[1], KEYS[2], KEYS[4], nil)
redis.call('ZADD', KEYS[1], 'NX', num(now), ARGV[1])
redis.call('SADD', KEYS[3], KEYS[1])
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do out[#out + 1] = conn_of(m) end
return out
"""

# ARGV: node, members to remove...
DROP = """
for i = 2, #ARGV - 1 do redis.call('ZREM', KEYS[1], ARGV[i]) end
local entries = prune(KEYS[1], KEYS[2], KEYS[4], nil)
if not owns(entries, ARGV[1]) then redis.call('SREM', KEYS[3], KEYS[1]) end
return 1
"""

# KEYS: key, node keys. ARGV: members to (re-)add, keeping the score of those present.
ASSERT = """
for i = 1, #ARGV do redis.call('ZADD', KEYS[1], 'NX', num(now), ARGV[i]) end
redis.call('SADD', KEYS[2], KEYS[1])
return 1
"""

# KEYS: nodes. ARGV: node, ttl (us). -> {1 when the node was not there, dead nodes}.
HEARTBEAT = """
local added = redis.call('ZADD', KEYS[1], num(now + tonumber(ARGV[2])), ARGV[1])
return {added, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. num(now))}
"""

# KEYS: nodes, the node's keys. ARGV: node, "force". -> its keys, or nil when it is alive.
REAP = """
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ARGV[2] ~= 'force' and s and tonumber(s) >= now then return false end
redis.call('ZREM', KEYS[1], ARGV[1])
local keys = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
return keys
"""

# (a dead node's key)
PRUNE = """
prune(KEYS[1], KEYS[2], KEYS[4], nil)
return 1
"""
