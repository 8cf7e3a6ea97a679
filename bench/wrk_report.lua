-- wrk script used by bench/proxybench.py for every wrk run.
--
-- 1. Explicit-proxy mode: when PB_ABS_URI is set (e.g. http://127.0.0.1:18080/small)
--    wrk still connects to the host:port given on its command line (the proxy),
--    but every request is sent in absolute-form, as a browser/curl would send it
--    to an explicit HTTP proxy:
--        GET http://127.0.0.1:18080/small HTTP/1.1
--        Host: 127.0.0.1:18080
--    The request stays static (no request() function), so wrk pre-builds it once
--    and the client costs as little CPU as in the direct case.
-- 2. At the end it prints one machine-readable line "PBJSON {...}" with the
--    request count, duration, errors and latency percentiles (microseconds,
--    from wrk's HdrHistogram), so the harness never scrapes wrk's human output.

local abs = os.getenv("PB_ABS_URI")
if abs ~= nil and abs ~= "" then
   local hostport = string.match(abs, "^https?://([^/]+)")
   wrk.path = abs
   wrk.headers["Host"] = hostport
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'PBJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"err_connect": %d, "err_read": %d, "err_write": %d, "err_status": %d, "err_timeout": %d, ' ..
      '"lat_p50_us": %d, "lat_p90_us": %d, "lat_p99_us": %d, "lat_max_us": %d, "lat_mean_us": %.1f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
