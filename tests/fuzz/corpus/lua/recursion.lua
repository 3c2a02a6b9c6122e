local function deep(n) if n == 0 then return {} end return { next = deep(n - 1) } end
local cyclic = {}
cyclic.self = cyclic
local function forever(n) return forever(n + 1) + 1 end
local ok, err = pcall(forever, 1)
return { app = "recursion", images = { a = deep(100) }, volumes = cyclic, budget = { on_exceed = tostring(ok) } }
