-- report.lua: wxbench's wrk hook. At the end of a run it prints wrk's
-- counters and its whole latency histogram (microseconds, as
-- [value,count] pairs) as one JSON line starting with "WXBENCH ", so that
-- wxbench can merge the rounds of a measurement into exact percentiles.
done = function(summary, latency, requests)
  local e = summary.errors
  local pairs_ = {}
  for i = 1, #latency do
    local v, c = latency(i)
    pairs_[#pairs_ + 1] = string.format("[%d,%d]", v, c)
  end
  io.write(string.format(
    'WXBENCH {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":[%s]}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(pairs_, ",")))
end
