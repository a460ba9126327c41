{
  "targets": [
    {
      "target_name": "origdst",
      "defines": ["NAPI_VERSION=8"],
      "sources": ["daemon/intercept/addon/origdst.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"]
    }
  ]
}
