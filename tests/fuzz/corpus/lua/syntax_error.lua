return { app = "broken", images = { web = { from = "scratch" }
