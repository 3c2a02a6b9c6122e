return { app = "a", images = { i = { from = "scratch" } },
  functions = { f = { image = "i", schedule = { cron = "* * * * *", timezone = ("x"):rep(1e5) } } } }
