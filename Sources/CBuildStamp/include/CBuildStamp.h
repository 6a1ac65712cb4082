#ifndef DNSD_CBUILDSTAMP_H
#define DNSD_CBUILDSTAMP_H

/// The build stamp: "COMMIT\nDATE" written into the binary after it is linked (scripts/stamp.py,
/// run by `make deb` and `make release`), "unknown\nunknown" in a plain build.
const char *dnsd_build_stamp(void);

#endif
