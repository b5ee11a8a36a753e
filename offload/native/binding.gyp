{
  "targets": [
    {
      "target_name": "offcast_native",
      "sources": ["sendbatch.c", "engine.c"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-pthread"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
