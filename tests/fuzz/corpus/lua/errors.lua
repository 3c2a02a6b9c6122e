local function check(value)
  if type(value) ~= "table" then error("expected a table, got " .. type(value)) end
  return value
end
local ok, message = pcall(check, 42)
assert(not ok and message:find("expected"), "pcall should report")
error({ code = 1 })
