{
  "targets": [
    {
      "target_name": "offcast_native",
      "sources": ["sendbatch.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
