error(string.rep("x", 50000))
