-- Builds functions from string and table library calls.
local names = {}
for word in ("alpha beta gamma delta"):gmatch("%a+") do names[#names + 1] = word end
table.sort(names, function(a, b) return a > b end)
local functions = {}
for i, name in ipairs(names) do
  functions[name .. "-" .. i] = {
    image = "base",
    command = { "/bin/run", string.format("--index=%02d", i), name:upper(), utf8.char(233, 0x4e2d) },
    gpu = i % 2 == 0 and { "H100", "H200:2", "B200:8" } or "any",
    cpu = math.max(0.125, i / 3),
    memory = (i * 512) .. "Mi",
    timeout = math.floor(3600 / i),
    retries = { max = i, backoff = tostring(i * 10) .. "s" },
    schedule = i == 1 and { every = "1h" } or nil,
    max_inputs = 2 ^ i,
    scaledown_window = i * 30.5,
  }
end
return {
  app = "generated",
  images = { base = { from = "ghcr.io/org/base:" .. table.concat({ 1, 2, 3 }, "."), env = { K = "v" } } },
  functions = functions,
  secrets = setmetatable({}, { __index = function() return "x" end }),
  volumes = { data = {} },
  budget = { monthly_usd = 99.99 },
}
