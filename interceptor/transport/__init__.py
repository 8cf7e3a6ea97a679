"""
Moving bytes: read gates and flow control, timeouts, proxy modes and
opening upstream connections (L{interceptor.transport.connect}).
"""
