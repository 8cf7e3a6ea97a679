"""
Reading and writing flows to and from files.
"""
