"""
The fast paths: this package holds every code path that touches Twisted or
pyOpenSSL internals (C{fasttls}, C{fastwrite}, C{bodyrelay}, C{allocator}).
"""
