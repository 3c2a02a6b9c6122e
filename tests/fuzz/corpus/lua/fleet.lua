-- fleet: a spec written as a program. One table of models declares an
-- inference endpoint per model; the loop is what YAML cannot say.
-- The script returns the same table an app.yaml would hold.

local models = {
  { name = "llama-8b",   gpu = "L4",              memory = "16Gi", warm = 0 },
  { name = "llama-70b",  gpu = { "H100:2", "A100-80GB:4" }, memory = "160Gi", warm = 1 },
  { name = "mistral-7b", gpu = { "A10G", "L4" },  memory = "16Gi", warm = 0 },
  { name = "whisper",    gpu = "T4",              memory = "8Gi",  warm = 0 },
}

local functions = {}
for _, model in ipairs(models) do
  for _, size in ipairs({ "small", "large" }) do
    functions[model.name .. "-" .. size] = {
      image = "server",
      command = { "/srv/serve", "--model", model.name, "--batch", size },
      env = { MODEL = model.name, BATCH = size },
      web = { health_path = "/healthz" },
      gpu = model.gpu,
      cpu = 4,
      memory = model.memory,
      min_containers = size == "large" and model.warm or 0,
      max_containers = size == "large" and 8 or 4,
      max_inputs = size == "large" and 32 or 8,
      scaledown_window = "5m",
      secrets = { "hf" },
      volumes = { ["/weights"] = "weights" },
    }
  end
end

-- Refresh the weights cache every night, Paris time.
functions["sync-weights"] = {
  image = "server",
  command = { "/srv/sync-weights" },
  timeout = "2h",
  retries = { max = 3, backoff = "30s" },
  secrets = { "hf" },
  volumes = { ["/weights"] = "weights" },
  schedule = { cron = "30 2 * * *", timezone = "Europe/Paris" },
}

return {
  app = "fleet",
  images = {
    server = {
      from = { debootstrap = "bookworm" },
      steps = {
        { apt_install = { "python3", "python3-pip" } },
        { pip_install = { "vllm==0.6.3" } },
        { copy = { src = "./serve", dst = "/srv" } },
        { workdir = "/srv" },
      },
    },
  },
  functions = functions,
  secrets = { hf = { from_env = { "HF_TOKEN" } } },
  volumes = { weights = {} },
  budget = { daily_usd = 150, monthly_usd = 3000, on_exceed = "stop" },
}
