"""The Lua script the Redis store runs: one atomic decision over every window of some counters.

It transliterates :mod:`bff.ratelimit.algorithms` operation for operation (same float arithmetic,
same rounding, same choice of the tightest window), so both stores decide alike. State is
written with ``%.17g``, which round-trips a double exactly.

``KEYS``: one hash per counter, all under one hash tag (one Redis Cluster slot).
``ARGV``: ``now`` (seconds; empty: the server's ``TIME``, one clock for every gateway), ``cost``
(negative: give back), mode (``c`` charge, ``p`` only look), algorithm (``tb`` | ``sw``), then for
each key its window count and ``span limit capacity`` per window.
Returns ``{allowed, limit, remaining, reset_ms, retry_ms}``.
"""

from __future__ import annotations

import hashlib

__all__ = ["SCRIPT", "SCRIPT_SHA"]

SCRIPT = """
local now = tonumber(ARGV[1])
if not now then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local cost = tonumber(ARGV[2])
local charge = ARGV[3] == 'c'
local tb = ARGV[4] == 'tb'
local EPS = 1e-9
local floor, ceil = math.floor, math.ceil

local allowed, best_limit, best_rem, best_reset, retry = 1, 0, -1, 0, 0
local writes, ttls = {}, {}
local a = 5
for k = 1, #KEYS do
  local state = {}
  local raw = redis.call('HGETALL', KEYS[k])
  for i = 1, #raw, 2 do state[raw[i]] = tonumber(raw[i + 1]) end
  local out, ttl = {}, 0
  local n = tonumber(ARGV[a])
  a = a + 1
  for w = 1, n do
    local f = ARGV[a]
    local span, limit, cap = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
    local ok, rem, reset_ms, retry_ms
    if tb then
      local interval = span / limit
      local tat = state[f]
      if tat == nil or tat < now then tat = now end
      local new_tat = tat + cost * interval
      local free = (now - (new_tat - cap * interval)) / interval
      if free >= -EPS or cost <= 0 then
        ok, rem = true, floor(free + EPS)
        reset_ms, retry_ms = ceil((new_tat - now) * 1000), 0
        out[#out + 1] = f
        out[#out + 1] = string.format('%.17g', new_tat)
        local t = ceil((new_tat - now) * 1000) + 1000
        if t < 1000 then t = 1000 end
        if t > ttl then ttl = t end
      else
        local free_now = (now - (tat - cap * interval)) / interval
        ok, rem = false, floor(free_now + EPS)
        reset_ms, retry_ms = ceil((tat - now) * 1000), ceil(-free * interval * 1000)
      end
      if rem < 0 then rem = 0 elseif rem > cap then rem = cap end
    else
      local fi, fc, fp = f .. ':i', f .. ':c', f .. ':p'
      local index = floor(now / span)
      local stored = state[fi]
      local current = state[fc] or 0
      local previous = state[fp] or 0
      if stored == nil then
        current, previous = 0, 0
      elseif index == stored + 1 then
        previous, current = current, 0
      elseif index ~= stored then
        current, previous = 0, 0
      end
      local elapsed = (now - index * span) / span
      local estimate = previous * (1 - elapsed) + current
      local free = limit - estimate - cost
      local reset = (index + 1) * span - now
      reset_ms = ceil(reset * 1000)
      if free >= -EPS or cost <= 0 then
        local count = current + cost
        if count < 0 then count = 0 end
        ok, rem, retry_ms = true, floor(free + EPS), 0
        out[#out + 1] = fi
        out[#out + 1] = string.format('%.17g', index)
        out[#out + 1] = fc
        out[#out + 1] = string.format('%.17g', count)
        out[#out + 1] = fp
        out[#out + 1] = string.format('%.17g', previous)
        local t = ceil(((index + 2) * span - now) * 1000)
        if t > ttl then ttl = t end
      else
        ok, rem = false, floor(limit - estimate + EPS)
        local wait
        if cost > limit then
          wait = reset + span
        elseif current + cost <= limit + EPS then
          wait = (1 - (limit - current - cost) / previous - elapsed) * span
        else
          local share = 0
          if current > 0 then
            share = 1 - (limit - cost) / current
            if share < 0 then share = 0 end
          end
          wait = reset + share * span
        end
        retry_ms = ceil(wait * 1000)
      end
      if rem < 0 then rem = 0 elseif rem > limit then rem = limit end
    end
    if not ok then
      allowed = 0
      if retry_ms > retry then retry = retry_ms end
    end
    if best_rem < 0 or rem < best_rem or (rem == best_rem and reset_ms > best_reset) then
      if tb then best_limit = cap else best_limit = limit end
      best_rem, best_reset = rem, reset_ms
    end
  end
  writes[k], ttls[k] = out, ttl
end
if charge and (allowed == 1 or cost <= 0) then
  for k = 1, #KEYS do
    if #writes[k] > 0 then
      redis.call('HSET', KEYS[k], unpack(writes[k]))
      redis.call('PEXPIRE', KEYS[k], ttls[k])
    end
  end
end
return {allowed, best_limit, best_rem, best_reset, retry}
"""

SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
"""What ``SCRIPT LOAD`` answers, known without asking."""
