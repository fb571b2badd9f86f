-- upload.lua: makes every request of the run a POST of the multipart body
-- in the file $WXBENCH_BODY, whose boundary is $WXBENCH_BOUNDARY. wrk
-- builds the request once per thread and sends it again and again.
local f = assert(io.open(os.getenv("WXBENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. os.getenv("WXBENCH_BOUNDARY")
