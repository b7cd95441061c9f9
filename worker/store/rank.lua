-- Prepended to the scripts that order events (see scripts.py). A rank is "version.tiebreak":
-- versions are int64 in decimal, compared as strings since Lua numbers lose precision past
-- 2^53; on equal versions a removal (tiebreak 1) beats an upsert (tiebreak 0). A high-water
-- mark adds "@<epoch ms of the push>", which ordering ignores.
local function newer(a, b)
  local va, ta = string.match(a, '^(%d+)%.?(%d?)')
  local vb, tb = string.match(b, '^(%d+)%.?(%d?)')
  if #va ~= #vb then return #va > #vb end
  if va ~= vb then return va > vb end
  return ta > tb
end
