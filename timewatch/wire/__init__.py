"""Wire codecs: the bytes of NTP packets, NMEA sentences and UBX frames, and the serial framer.

Pure functions and small records, no clock, no I/O. Readers and the engine both import them;
neither imports the other for a codec.
"""
