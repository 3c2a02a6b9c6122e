return {
  app = "bad-values",
  images = { [1] = "mixed", named = { from = function() end } },
  functions = { f = { image = "named", cpu = 0 / 0, memory = math.huge, timeout = -math.huge,
                      max_containers = math.maxinteger, min_containers = math.mininteger,
                      env = { [true] = "x" }, command = { 1, nil, 3 }, gpu = coroutine } },
  budget = { daily_usd = 1e308 * 10 },
}
