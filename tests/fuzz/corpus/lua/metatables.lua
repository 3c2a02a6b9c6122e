local counter = setmetatable({}, { __call = function(self, n) return n + 1 end, __len = function() return 99 end })
local proxy = setmetatable({}, { __pairs = function() error("no") end, __index = { app = "proxy" } })
local s = select("#", 1, 2, 3) .. tostring(counter(1)) .. #"abc"
return setmetatable({ app = "meta-" .. s, volumes = { v = proxy } }, { __newindex = rawset })
