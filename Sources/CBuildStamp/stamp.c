#include "CBuildStamp.h"

// A fixed-size field after a marker, found and overwritten in the linked binary by
// scripts/stamp.py (no rebuild, and no compiler flag that would rebuild every module). Read
// only through this function, so no caller can fold its contents at compile time.
static const char stamp[160] = "@(#)dnsd-build-stamp:unknown\nunknown";

const char *dnsd_build_stamp(void) {
    return stamp + sizeof("@(#)dnsd-build-stamp:") - 1;
}
