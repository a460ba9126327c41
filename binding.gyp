{
  "targets": [
    {
      "target_name": "origdst",
      "defines": [
        "NAPI_VERSION=8"
      ],
      "sources": [
        "daemon/intercept/addon/origdst.c"
      ],
      "cflags": [
        "-Wall",
        "-Wextra",
        "-Werror",
        "-O2"
      ],
      "include_dirs": [
        "daemon/native"
      ]
    },
    {
      "target_name": "sdnotify",
      "defines": [
        "NAPI_VERSION=8"
      ],
      "sources": [
        "daemon/systemd/addon/sdnotify.c"
      ],
      "cflags": [
        "-Wall",
        "-Wextra",
        "-Werror",
        "-O2"
      ],
      "include_dirs": [
        "daemon/native"
      ]
    },
    {
      "target_name": "malloctrim",
      "defines": [
        "NAPI_VERSION=8"
      ],
      "sources": [
        "daemon/run/addon/malloctrim.c"
      ],
      "cflags": [
        "-Wall",
        "-Wextra",
        "-Werror",
        "-O2"
      ],
      "include_dirs": []
    }
  ]
}
