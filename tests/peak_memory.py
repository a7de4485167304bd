"""The peak resident memory of a child interpreter, for tests that measure one in a fresh process.

`resource.getrusage(RUSAGE_SELF).ru_maxrss` is wrong there: Linux keeps the parent's high-water
mark across fork and exec, so a child of a pytest worker that once held 2.6 GB reports 2.6 GB
whatever it used. VmHWM in /proc/self/status belongs to the address space exec made."""

# an expression for the child's script: its peak resident memory in MB
PEAK_MB = "int(next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')).split()[1]) / 1024"
