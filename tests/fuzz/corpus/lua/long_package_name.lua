return { app = "a", images = { i = { from = "scratch", steps = { { apt_install = { ("a"):rep(100000) } } } } } }
