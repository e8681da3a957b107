"""The parts of the WARC reader (`tasks.data.warc_reader` is its interface).

* `stream` — a file's decompressed bytes, gzip member by gzip member, in bounded steps;
  it finds the next member after corrupt or foreign bytes;
* `records` — WARC records out of those bytes: headers read within a byte limit and
  checked, blocks read on demand, re-synchronisation after a record it cannot read,
  and the damage between records;
* `payload` — the HTTP body of a response within a byte budget, whatever its encoding;
* `detail` — the short, printable texts that error rows carry.
"""
