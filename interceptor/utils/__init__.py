"""
Small helpers addon scripts import, as mitmproxy's C{mitmproxy.utils} has
them: L{strutils} (str/bytes conversions and escaping) and L{human}
(sizes and timestamps for people).  Plain Python: this package imports
nothing else of interceptor, so the model may use it.
"""
