local t = {}
for i = 1, 10000000 do t[i] = string.rep("x", i % 100) end
return { app = "huge", images = t }
