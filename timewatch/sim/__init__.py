"""Simulators: the same UDP packets (and later pty bytes and PPS edges) the real readers see.

`ntpserver`: a simulated NTP server on loopback; `demo`: `timewatch demo`.
"""
