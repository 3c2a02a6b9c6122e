return {
  app = "hello",
  images = { web = { from = "scratch", cmd = { "/bin/busybox", "httpd", "-f", "-h", "/www" } } },
  functions = {
    site = {
      image = "web",
      command = { "/bin/busybox", "sh", "-c", "exec httpd -f -h /www -p $PORT" },
      web = { health_path = "/" },
      cpu = 0.25,
      memory = "64Mi",
      min_containers = 0,
      max_containers = 3,
      max_inputs = 8,
      scaledown_window = "30s",
    },
  },
}
