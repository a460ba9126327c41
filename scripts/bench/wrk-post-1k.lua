-- POST with a 1 KiB body (wrk adds its Content-Length), and wrk-report.lua's one-line JSON
-- summary. For scripts/bench/http-mesh-stages.ts: a retry policy holds a request body for
-- replay, which a GET never has.
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk-report.lua")
