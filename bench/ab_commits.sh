#!/bin/bash
# A/B: interceptor at HEAD (project .venv) and at the base commit, with mitmdump, one sitting.
# Usage: bench/ab_commits.sh [proxybench options]; the base checkout is /work/wt-base (a venv of the older commit).
B=/work/wt-base/.venv/bin/twistd
C="-n --pidfile= interceptor -q --listen tcp:{port}:interface=127.0.0.1 --confdir {confdir} "
cd /work/main && python3 bench/proxybench.py --compare interceptor,mitmdump \
  --name interceptor-base \
  --forward-cmd "$B $C --set ssl_verify_upstream_trusted_ca={backend_ca}" \
  --reverse-cmd "$B $C --mode reverse:http://127.0.0.1:{backend_http_port}" \
  --stream-cmd "$B $C --set ssl_verify_upstream_trusted_ca={backend_ca} --set stream_large_bodies=1m" \
  --proxy-ca "{confdir}/interceptor-ca-cert.pem" --version-cmd "$B --version" "$@"
